"""`datanet init`, `datanet vault ...` and `datanet identity ...`."""

from __future__ import annotations

import argparse
from pathlib import Path

from client import identity as identity_mod
from client.cli.attach import exclusive
from client.cli.context import Context
from client.cli.output import human_bytes, table
from client.errors import IdentityError, NeedsInput
from client.unlock import keystore_for, new_passphrase, passphrase_from_environment
from storage.errors import VaultExists
from storage.key_file import write_private_file
from storage.vault import BrokenShard, Vault

EXIT_CHECK_FAILED = 5


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("init", help="create the vault and your identity (other commands do it on first use too)")
    p.set_defaults(handler=cmd_init)

    vault = sub.add_parser("vault", help="the encrypted vault: status, check, rekey, passphrase, recover")
    vsub = vault.add_subparsers(dest="vault_command", required=True, metavar="COMMAND")
    vsub.add_parser("status", help="where the vault is and how it is unlocked").set_defaults(handler=cmd_status)
    vsub.add_parser("check", help="run the integrity check on every shard").set_defaults(handler=cmd_check)
    p = vsub.add_parser("rekey", help="rotate a Datanet shard's database key")
    p.add_argument("name", help="Datanet name")
    p.set_defaults(handler=cmd_rekey)
    p = vsub.add_parser("passphrase", help="set or change the vault passphrase, or move the key to the keyring")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--remove", action="store_true", help="remove the passphrase (the keyring keeps the key)")
    group.add_argument("--keyring", action="store_true", help="also keep the key in this machine's keyring")
    p.set_defaults(handler=cmd_passphrase)
    p = vsub.add_parser("recover", help="unlock with the recovery code and store the key again")
    p.add_argument("--code-file", type=Path, help="read the recovery code from this file instead of a prompt")
    p.set_defaults(handler=cmd_recover)

    ident = sub.add_parser("identity", help="your peer id, EVM address and ZK identity")
    isub = ident.add_subparsers(dest="identity_command", required=True, metavar="COMMAND")
    isub.add_parser("show", help="print the public parts of your identity").set_defaults(handler=cmd_identity_show)
    p = isub.add_parser("export", help="write an encrypted backup of your identity")
    p.add_argument("file", type=Path)
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.set_defaults(handler=cmd_identity_export)
    p = isub.add_parser("import", help="restore your identity from an encrypted backup")
    p.add_argument("file", type=Path)
    p.add_argument("--replace", action="store_true", help="replace a different identity (the old one is kept aside)")
    p.set_defaults(handler=cmd_identity_import)


def _backup_passphrase(ctx: Context, *, confirm: bool) -> str:
    """From DATANET_BACKUP_PASSPHRASE(_FILE), else asked on the terminal (twice for a new backup)."""
    given = passphrase_from_environment(ctx.env, prefix="DATANET_BACKUP_")
    if given is None:
        given = ctx.prompter.new_secret("backup") if confirm else ctx.prompter.secret("Backup passphrase: ")
    if confirm:  # a new backup: its passphrase is held to the minimum length, whatever its source
        given = new_passphrase(given, "backup")
    if given is None:
        raise NeedsInput(
            "The identity backup needs a passphrase: set DATANET_BACKUP_PASSPHRASE_FILE (or "
            "DATANET_BACKUP_PASSPHRASE), or run in a terminal."
        )
    return given


def cmd_init(ctx: Context, args: argparse.Namespace) -> int:
    if Vault.exists(ctx.config.data_dir):
        raise VaultExists(f"A vault already exists in {ctx.config.data_dir}; it was left as it is.")
    opened = ctx.open()
    public = opened.identity.public()
    ctx.out.emit(
        {"data_dir": str(ctx.config.data_dir), **public.as_dict(), **ctx.created_fields(opened)},
        f"Vault created in {ctx.config.data_dir}\npeer id      {public.peer_id}\nEVM address  {public.evm_address}",
    )
    return 0


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open(create=False)
    described = opened.vault.describe_unlock()
    shards = opened.vault.list_shards()
    on_disk = sum(s.path.stat().st_size for s in shards)
    data = {
        "data_dir": str(ctx.config.data_dir),
        **described,
        "unlocked_with": opened.vault.unlocked_with,
        "datanets": len(shards),
        "bytes_on_disk": on_disk,
    }
    ctx.out.emit(
        data,
        f"data dir      {ctx.config.data_dir}\n"
        f"vault id      {described['vault_id']}\n"
        f"keyring       {described['keyring'] or 'not used'}\n"
        f"passphrase    {'set' if described['passphrase'] else 'not set'}\n"
        f"unlocked with {opened.vault.unlocked_with}\n"
        f"datanets      {len(shards)} ({human_bytes(on_disk)} encrypted on disk)",
    )
    return 0


def cmd_check(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open(create=False)
    rows: list[tuple[str, int | None, list[str]]] = []
    broken: list[tuple[str, int | None, list[str]]] = []
    for item in opened.vault.each_shard():
        if isinstance(item, BrokenShard):
            broken.append((f"? ({item.path.name})", None, [item.reason]))
            continue
        with item as shard:
            report = shard.check()
        rows.append((shard.info.name, report.records, list(report.problems)))
    rows = sorted(rows, key=lambda row: row[0].lower()) + broken
    ok = all(not problems for _, _, problems in rows)
    text = (
        table(
            [[name, "?" if n is None else str(n), "; ".join(problems) or "ok"] for name, n, problems in rows],
            ["DATANET", "RECORDS", "CHECK"],
        )
        if rows
        else "The vault has no Datanets yet."
    )
    if not ok:
        text += "\nProblems found: restore the damaged shard from a backup or re-sync it from peers."
    data = {"ok": ok, "datanets": [{"datanet": name, "records": n, "problems": p} for name, n, p in rows]}
    ctx.out.emit(data, text)
    return 0 if ok else EXIT_CHECK_FAILED


def cmd_rekey(ctx: Context, args: argparse.Namespace) -> int:
    with exclusive(ctx):  # the shard file is rewritten: no node may hold it open meanwhile
        opened = ctx.open(create=False)
        opened.vault.rekey_shard(args.name)
    ctx.out.emit({"datanet": args.name, "rekeyed": True}, f"Datanet {args.name!r} re-encrypted under a new key.")
    return 0


def cmd_passphrase(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open(create=False)
    if args.keyring:
        keystore = keystore_for(ctx.config)
        if keystore is None:
            raise NeedsInput("No usable keyring was found on this machine; the passphrase stays the way to unlock.")
        opened.vault.use_keyring(keystore)
        ctx.out.emit({"keyring": keystore.backend_name}, "The vault key is now also kept in the keyring.")
        return 0
    if args.remove:
        opened.vault.set_passphrase(None)
        ctx.out.emit({"passphrase": False}, "Passphrase removed; the keyring unlocks the vault.")
        return 0
    passphrase = new_passphrase(
        passphrase_from_environment(ctx.env, prefix="DATANET_NEW_") or ctx.prompter.new_secret("vault")
    )
    if passphrase is None:
        raise NeedsInput(
            "A new passphrase is needed: set DATANET_NEW_PASSPHRASE_FILE (or DATANET_NEW_PASSPHRASE), "
            "or run in a terminal."
        )
    opened.vault.set_passphrase(passphrase)
    ctx.out.emit({"passphrase": True}, "Passphrase set; the vault key was re-wrapped (no data re-encrypted).")
    return 0


def cmd_recover(ctx: Context, args: argparse.Namespace) -> int:
    if args.code_file is not None:
        try:
            code = args.code_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise NeedsInput(f"Cannot read {args.code_file} ({exc.strerror}).") from None
    else:
        asked = ctx.prompter.secret("Recovery code: ")
        if asked is None:
            raise NeedsInput("The recovery code is needed: pass --code-file FILE or run in a terminal.")
        code = asked
    keystore = keystore_for(ctx.config)
    passphrase = None
    if keystore is None:
        passphrase = new_passphrase(passphrase_from_environment(ctx.env) or ctx.prompter.new_secret("vault"))
    vault = Vault.recover(ctx.config.data_dir, code, keystore=keystore, new_passphrase=passphrase)
    where = "the keyring" if keystore is not None else "a new passphrase"
    ctx.out.emit({"recovered": True, **vault.describe_unlock()}, f"Vault unlocked; its key is now kept by {where}.")
    return 0


def cmd_identity_show(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open()
    public = opened.identity.public()
    ctx.out.emit(
        {**public.as_dict(), **ctx.created_fields(opened)},
        f"peer id      {public.peer_id}\nEVM address  {public.evm_address}\n"
        f"ZK identity  {public.identity_commitment} (commitment)",
    )
    return 0


def cmd_identity_export(ctx: Context, args: argparse.Namespace) -> int:
    target: Path = args.file
    if target.exists() and not args.force:
        raise IdentityError(f"{target} exists; choose another file or pass --force to overwrite it.")
    opened = ctx.open(create=False)
    data = identity_mod.export_backup(opened.identity, _backup_passphrase(ctx, confirm=True))
    write_private_file(target.absolute(), data)
    ctx.out.emit(
        {"file": str(target), **opened.identity.public().as_dict()},
        f"Identity backup written to {target} (encrypted; keep the passphrase apart from it).",
    )
    return 0


def cmd_identity_import(ctx: Context, args: argparse.Namespace) -> int:
    with exclusive(ctx):  # the node's identity changes: no node may run with the old one meanwhile
        return _identity_import(ctx, args)


def _identity_import(ctx: Context, args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise IdentityError(f"Cannot read {args.file} ({exc.strerror}).") from None
    restored = identity_mod.import_backup(data, _backup_passphrase(ctx, confirm=False))
    opened = ctx.open()
    current = identity_mod.load(opened.vault)
    public = restored.public()
    if current is not None and current.public() == public:
        ctx.out.emit({**public.as_dict(), "changed": False}, "This vault already holds that identity.")
        return 0
    if current is not None and not opened.recovery_code and not args.replace:
        raise IdentityError(
            f"This vault holds another identity ({current.public().peer_id}); pass --replace to switch "
            "(the current one is kept aside in the vault)."
        )
    if current is not None:
        opened.vault.put_secret(f"identity/replaced/{current.public().peer_id}", current.to_bytes())
    opened.vault.put_secret(identity_mod.SECRET_NAME, restored.to_bytes())
    ctx.out.emit({**public.as_dict(), "changed": True}, f"Identity restored: peer id {public.peer_id}")
    return 0
