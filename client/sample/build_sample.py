"""Builds the sample Datanet `clinic-intents`: what patients write to a clinic's front desk, in 8 intents.

The sentences are written for this project (no third-party data, no download): templates with slots, filled
deterministically from a fixed seed, so `python -m client.sample.build_sample` rebuilds the committed files
byte for byte (a test checks). 60 records per intent for training and 15 for the public evaluation split.
Records are `{"text": ..., "label": ...}`, the `intent-classification` task.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).parent
TRAIN_FILE = HERE / "clinic_intents.jsonl"
EVAL_FILE = HERE / "clinic_intents_eval.jsonl"
SEED = 20261124
TRAIN_PER_LABEL = 60
EVAL_PER_LABEL = 15

SLOTS: dict[str, list[str]] = {
    "day": [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "tomorrow",
        "next week",
        "this afternoon",
        "the 14th",
    ],
    "time": ["9am", "10:30", "noon", "2pm", "half past three", "the morning", "the evening", "lunchtime"],
    "doctor": ["Dr. Okafor", "Dr. Lindqvist", "Dr. Patel", "Dr. Moreau", "the nurse", "my GP", "Dr. Tanaka"],
    "drug": [
        "metformin",
        "lisinopril",
        "my inhaler",
        "levothyroxine",
        "atorvastatin",
        "sertraline",
        "my insulin",
        "amoxicillin",
    ],
    "test": ["blood test", "MRI", "X-ray", "cholesterol panel", "urine sample", "biopsy", "ECG", "allergy test"],
    "symptom": [
        "a sore throat",
        "a fever",
        "a rash on my arm",
        "back pain",
        "a cough that won't go away",
        "headaches",
        "dizziness",
        "an upset stomach",
    ],
    "bill": ["invoice", "bill", "statement", "co-payment", "insurance claim", "receipt"],
    "contact": ["phone number", "address", "email", "emergency contact", "insurance details", "surname"],
}

TEMPLATES: dict[str, list[str]] = {
    "book_appointment": [
        "Can I book an appointment with {doctor} on {day}?",
        "I'd like to see {doctor} {day}, ideally around {time}.",
        "Is there a free slot {day} at {time}?",
        "Please schedule me in with {doctor}.",
        "I need an appointment for a check-up {day}.",
        "Could you fit me in {day} in {time}?",
    ],
    "cancel_appointment": [
        "I need to cancel my appointment {day}.",
        "Please cancel my visit with {doctor} on {day}.",
        "I can't make it {day} at {time}, can you cancel it?",
        "Cancel my booking with {doctor}, please.",
        "Something came up, I won't be coming in {day}.",
        "Can you take me off the list for {day}?",
    ],
    "prescription_refill": [
        "I'm running out of {drug}, can I get a refill?",
        "Could {doctor} renew my prescription for {drug}?",
        "I need a repeat prescription of {drug}.",
        "Is my {drug} refill ready to pick up?",
        "Please send a new prescription for {drug} to my pharmacy.",
        "My {drug} prescription expired, can it be renewed?",
    ],
    "test_results": [
        "Are the results of my {test} back yet?",
        "When will I hear about my {test}?",
        "Can {doctor} go over my {test} results with me?",
        "I had a {test} last week, is everything okay?",
        "Could you email me the results of the {test}?",
        "Has anyone looked at my {test} from {day}?",
    ],
    "billing_question": [
        "I think there's a mistake on my {bill}.",
        "Why was I charged twice on this {bill}?",
        "Can I pay my {bill} in instalments?",
        "I haven't received the {bill} for my last visit.",
        "Does my insurance cover this {bill}?",
        "Who do I talk to about a {bill} from {doctor}?",
        "Where do I send payment for the {bill} from {day}?",
    ],
    "opening_hours": [
        "What time do you open {day}?",
        "Are you open {day} at {time}?",
        "When does the clinic close {day}?",
        "Is the surgery open on weekends?",
        "What are your opening hours {day}?",
        "Can I walk in at {time} or are you closed?",
    ],
    "symptom_advice": [
        "I've had {symptom} since {day}, should I come in?",
        "Is {symptom} something to worry about?",
        "My child has {symptom}, what should I do?",
        "I woke up with {symptom}, do I need to see {doctor}?",
        "What can I take for {symptom}?",
        "I still have {symptom} after three days.",
    ],
    "update_contact": [
        "I moved, please update my {contact}.",
        "My {contact} has changed, can you update your records?",
        "How do I change the {contact} on my file?",
        "Please note my new {contact}.",
        "Can {doctor}'s office use my new {contact}?",
        "I want to update my {contact} before {day}.",
    ],
}


def _fill(template: str, rng: random.Random) -> str:
    values = {name: rng.choice(options) for name, options in SLOTS.items()}
    return template.format(**values)


def build() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    rng = random.Random(SEED)  # noqa: S311 - deterministic sample data, not security
    train: list[dict[str, str]] = []
    evaluation: list[dict[str, str]] = []
    for label, templates in TEMPLATES.items():
        seen: set[str] = set()
        texts: list[str] = []
        while len(texts) < TRAIN_PER_LABEL + EVAL_PER_LABEL:
            text = _fill(rng.choice(templates), rng)
            if text not in seen:
                seen.add(text)
                texts.append(text)
        train += [{"text": t, "label": label} for t in texts[:TRAIN_PER_LABEL]]
        evaluation += [{"text": t, "label": label} for t in texts[TRAIN_PER_LABEL:]]
    rng.shuffle(train)
    rng.shuffle(evaluation)
    return train, evaluation


def to_jsonl(rows: list[dict[str, str]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode()


def main() -> int:
    train, evaluation = build()
    TRAIN_FILE.write_bytes(to_jsonl(train))
    EVAL_FILE.write_bytes(to_jsonl(evaluation))
    sys.stdout.write(f"{len(train)} training and {len(evaluation)} evaluation records written\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
