"""`datanet gov status|delegate|propose|list|show|vote|queue|execute` (the protocol's Governor) and `datanet poll
create|list|results|vote|enrol|enrolment` (a Datanet's anonymous one-member-one-vote polls). Each goes through
the node (client/app/governance.py); an anonymous vote is a node job in the chain lane, followed here."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from client.app.governance import parse_duration
from client.chain.types import GOVERNED, TOKEN
from client.cli.args import positive
from client.cli.attach import attach, job_result
from client.cli.chain_commands import CHAIN_TIMEOUT, ETHER
from client.cli.context import Context
from client.cli.output import table
from client.errors import ClientError
from client.node.control import ControlClient


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gov = sub.add_parser("gov", help="protocol governance: proposals and stake-weighted votes on chain")
    gsub = gov.add_subparsers(dest="gov_command", required=True, metavar="ACTION")
    gsub.add_parser("status", help="the Governor's settings, governed parameters, your voting power").set_defaults(
        handler=cmd_gov_status
    )
    p = gsub.add_parser("delegate", help="give your tokens' votes to an account (yourself by default)")
    p.add_argument("to", nargs="?", help="a 0x address")
    p.set_defaults(handler=cmd_gov_delegate)
    p = gsub.add_parser("propose", help="propose changing a governed parameter")
    p.add_argument("parameter", choices=list(GOVERNED))
    p.add_argument("value", help="wei or e.g. 0.01eth (stake floor), a duration like 3d (period), a number (priority)")
    p.add_argument("--description", required=True, help="what it changes and why")
    p.add_argument("--datanet", help="the Datanet (priority only)")
    p.set_defaults(handler=cmd_gov_propose)
    gsub.add_parser("list", help="every proposal on this chain").set_defaults(handler=cmd_gov_list)
    p = gsub.add_parser("show", help="one proposal: what it changes, state, votes, quorum, when it can run")
    p.add_argument("id", type=positive)
    p.set_defaults(handler=cmd_gov_show)
    p = gsub.add_parser("vote", help="vote on an active proposal")
    p.add_argument("id", type=positive)
    p.add_argument("support", choices=["for", "against", "abstain"])
    p.add_argument("--reason", default="", help="recorded on chain with the vote")
    p.set_defaults(handler=cmd_gov_vote)
    for step, text in (("queue", "queue a passed proposal in the timelock"), ("execute", "execute a queued one")):
        p = gsub.add_parser(step, help=text)
        p.add_argument("id", type=positive)
        p.set_defaults(handler=cmd_gov_step, step=step)

    poll = sub.add_parser("poll", help="a Datanet's anonymous polls: one member, one vote, no name attached")
    psub = poll.add_subparsers(dest="poll_command", required=True, metavar="ACTION")
    p = psub.add_parser("create", help="open a poll in a Datanet you are a member of")
    p.add_argument("name", help="Datanet name")
    p.add_argument("question")
    p.add_argument("options", nargs="+", metavar="OPTION", help="2 to 16 answers")
    p.add_argument("--closes-in", default="7d", help="how long it stays open: 3600, 30m, 2h, 7d (default 7d)")
    p.set_defaults(handler=cmd_poll_create)
    p = psub.add_parser("list", help="the polls on this chain, or of one Datanet")
    p.add_argument("name", nargs="?", help="Datanet name")
    p.set_defaults(handler=cmd_poll_list)
    p = psub.add_parser("results", help="a poll's question, options and tally")
    p.add_argument("id", type=positive)
    p.set_defaults(handler=cmd_poll_results)
    p = psub.add_parser("vote", help="vote anonymously: a membership proof, sent from a fresh address")
    p.add_argument("id", type=positive)
    p.add_argument("option", help="the option's text, or its number from 1")
    p.add_argument("--payer-key-file", help="a chain without a faucet: a 0600 file with a key (not yours) for gas")
    p.set_defaults(handler=cmd_poll_vote)
    p = psub.add_parser("enrol", help="put your identity in a Datanet's contributor tree without contributing")
    p.add_argument("name", help="Datanet name")
    p.set_defaults(handler=cmd_poll_enrol)
    p = psub.add_parser("enrolment", help="owner of a Datanet: let members enrol without contributing, or stop it")
    p.add_argument("name", help="Datanet name")
    p.add_argument("state", choices=["open", "closed"])
    p.set_defaults(handler=cmd_poll_enrolment)


def _node(ctx: Context) -> ControlClient:
    return attach(ctx, chain=True)


def _when(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp)) if timestamp else "-"


def _tokens(units: int) -> str:
    return f"{units / TOKEN:,.0f} DNG" if units % TOKEN == 0 else f"{units / TOKEN:,.4f} DNG"


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_value(parameter: str, text: str) -> int:
    """A governed parameter's new value as the chain takes it."""
    text = text.strip().lower()
    if parameter == "challenge-period":
        return parse_duration(text)
    if parameter == "batch-stake-floor":
        for suffix in ("ether", "eth"):
            if text.endswith(suffix):
                try:
                    return round(float(text.removesuffix(suffix)) * ETHER)
                except ValueError:
                    break
        if text.isdigit():
            return int(text)
        raise ClientError(f"{text!r} is not a stake; write wei (a whole number) or ether, e.g. 0.01eth.")
    if text.isdigit():
        return int(text)
    raise ClientError(f"{text!r} is not a priority; write a whole number.")


def _change_text(change: dict[str, Any] | None) -> str:
    if change is None:
        return "a call this client does not know"
    value = change["value"]
    shown = {
        "batch-stake-floor": f"{value / ETHER:g} ETH ({value} wei)",
        "challenge-period": _duration(value),
    }.get(change["parameter"], str(value))
    where = f" of Datanet {change['datanet_id']}" if "datanet_id" in change else ""
    return f"set {change['parameter']}{where} to {shown}"


def _proposal_text(p: dict[str, Any]) -> str:
    voted = p["votes_for"] + p["votes_against"] + p["votes_abstain"]
    lines = [
        f"Proposal {p['id']}: {p['state']}",
        f"  {p['description']}",
        *(f"  - {_change_text(a.get('change'))}" for a in p["actions"]),
        f"  voting     {_when(p['vote_start'])} to {_when(p['vote_end'])}",
        f"  votes      for {_tokens(p['votes_for'])}, against {_tokens(p['votes_against'])}, "
        f"abstain {_tokens(p['votes_abstain'])} (quorum {_tokens(p['quorum'])}, {_tokens(voted)} cast)",
        f"  proposer   {p['proposer']}",
    ]
    if p["eta"]:
        lines.append(f"  executable from {_when(p['eta'])}")
    return "\n".join(lines)


def cmd_gov_status(ctx: Context, args: argparse.Namespace) -> int:
    data = _node(ctx).call("gov.status", timeout=CHAIN_TIMEOUT)
    s, power = data["settings"], data["power"]
    text = (
        f"voting     opens {_duration(s['voting_delay'])} after a proposal, lasts {_duration(s['voting_period'])}; "
        f"quorum {s['quorum_percent']}% of {_tokens(s['token_supply'])}\n"
        f"proposing  needs {_tokens(s['proposal_threshold'])} of votes; the timelock waits "
        f"{_duration(s['timelock_delay'])}\n"
        f"governed   batch-stake-floor {s['batch_stake_floor'] / ETHER:g} ETH, challenge-period "
        f"{_duration(s['challenge_period'])}, priority (per Datanet)\n"
        f"you        {power['account']}: {_tokens(power['balance'])}, {_tokens(power['votes'])} of votes"
        + ("" if power["delegate"] else " (not delegated: `datanet gov delegate` to vote with them)")
    )
    ctx.out.emit(data, text)
    return 0


def cmd_gov_delegate(ctx: Context, args: argparse.Namespace) -> int:
    data = _node(ctx).call("gov.delegate", to=args.to, timeout=CHAIN_TIMEOUT)
    ctx.out.emit(
        data, f"Your votes go to {data['power']['delegate']}; you now hold {_tokens(data['power']['votes'])} of votes."
    )
    return 0


def cmd_gov_propose(ctx: Context, args: argparse.Namespace) -> int:
    value = parse_value(args.parameter, args.value)
    made = _node(ctx).call(
        "gov.propose",
        parameter=args.parameter,
        value=value,
        description=args.description,
        datanet=args.datanet,
        timeout=CHAIN_TIMEOUT,
    )
    ctx.out.emit(made, _proposal_text(made) + f"\nVote with `datanet gov vote {made['id']} for|against|abstain`.")
    return 0


def cmd_gov_list(ctx: Context, args: argparse.Namespace) -> int:
    items: list[dict[str, Any]] = _node(ctx).call("gov.list", timeout=CHAIN_TIMEOUT)
    rows = [[str(p["id"]), p["state"], p["description"].splitlines()[0][:50], _when(p["vote_end"])] for p in items]
    ctx.out.emit(items, table(rows, ["ID", "STATE", "DESCRIPTION", "VOTING ENDS"]) if rows else "No proposals yet.")
    return 0


def cmd_gov_show(ctx: Context, args: argparse.Namespace) -> int:
    shown = _node(ctx).call("gov.show", id=args.id, timeout=CHAIN_TIMEOUT)
    ctx.out.emit(shown, _proposal_text(shown))
    return 0


def cmd_gov_vote(ctx: Context, args: argparse.Namespace) -> int:
    voted = _node(ctx).call("gov.vote", id=args.id, support=args.support, reason=args.reason, timeout=CHAIN_TIMEOUT)
    ctx.out.emit(
        voted, f"Voted {args.support} on proposal {args.id} ({voted['tx']}).\n" + _proposal_text(voted["proposal"])
    )
    return 0


def cmd_gov_step(ctx: Context, args: argparse.Namespace) -> int:
    done = _node(ctx).call(f"gov.{args.step}", id=args.id, timeout=CHAIN_TIMEOUT)
    verb = {"queue": "Queued", "execute": "Executed"}[args.step]
    ctx.out.emit(done, f"{verb} proposal {args.id} ({done['tx']}).\n" + _proposal_text(done["proposal"]))
    return 0


def _poll_text(p: dict[str, Any]) -> str:
    total = max(sum(p["tally"]), 1)
    state = "open until" if p["open"] else "closed at"
    lines = [
        f"Poll {p['id']} in Datanet {p['datanet'] or p['datanet_id']!r}: {p['question']}",
        f"  {state} {_when(p['deadline'])}; {p['votes']} vote(s)",
        *(
            f"  {i}. {option:<24} {count:>4}  {'#' * round(20 * count / total)}"
            for i, (option, count) in enumerate(zip(p["options"], p["tally"], strict=True), 1)
        ),
    ]
    return "\n".join(lines)


def cmd_poll_create(ctx: Context, args: argparse.Namespace) -> int:
    made = _node(ctx).call(
        "poll.create",
        datanet=args.name,
        question=args.question,
        options=args.options,
        closes_in=parse_duration(args.closes_in),
        timeout=CHAIN_TIMEOUT,
    )
    ctx.out.emit(made, _poll_text(made) + f"\nMembers vote with `datanet poll vote {made['id']} OPTION`.")
    return 0


def cmd_poll_list(ctx: Context, args: argparse.Namespace) -> int:
    items: list[dict[str, Any]] = _node(ctx).call("poll.list", datanet=args.name, timeout=CHAIN_TIMEOUT)
    rows = [
        [str(p["id"]), str(p["datanet"]), p["question"][:50], str(p["votes"]), "open" if p["open"] else "closed"]
        for p in items
    ]
    ctx.out.emit(items, table(rows, ["ID", "DATANET", "QUESTION", "VOTES", "STATE"]) if rows else "No polls yet.")
    return 0


def cmd_poll_results(ctx: Context, args: argparse.Namespace) -> int:
    shown = _node(ctx).call("poll.show", id=args.id, timeout=CHAIN_TIMEOUT)
    ctx.out.emit(shown, _poll_text(shown))
    return 0


def cmd_poll_vote(ctx: Context, args: argparse.Namespace) -> int:
    payer = None if args.payer_key_file is None else str(Path(args.payer_key_file).resolve())

    def progress(event: dict[str, Any]) -> None:
        if sys.stderr.isatty() and "step" in event:
            sys.stderr.write(f"\r{event['step']}...   ")
            sys.stderr.flush()

    job = _node(ctx).follow("poll.vote", progress, id=args.id, option=args.option, payer_key_file=payer)
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    voted = job_result(job)
    ctx.out.emit(
        voted,
        f"Voted {voted['option']!r} in poll {args.id}, anonymously: proven as a member without saying which, sent "
        f"from the fresh address {voted['sent_from']} ({voted['tx']}). The poll has {voted['votes']} vote(s).",
    )
    return 0


def cmd_poll_enrol(ctx: Context, args: argparse.Namespace) -> int:
    done = _node(ctx).call("poll.enrol", datanet=args.name, timeout=CHAIN_TIMEOUT)
    ctx.out.emit(done, f"Your identity is in Datanet {args.name!r}'s contributor tree now; you can vote in its polls.")
    return 0


def cmd_poll_enrolment(ctx: Context, args: argparse.Namespace) -> int:
    done = _node(ctx).call("poll.enrolment", datanet=args.name, open=args.state == "open", timeout=CHAIN_TIMEOUT)
    text = "may now enrol without contributing" if done["enrolment_open"] else "must contribute to vote"
    ctx.out.emit(done, f"Members of Datanet {args.name!r} {text}.")
    return 0
