#!/usr/bin/env python3
"""Forward alertd events from JetStream to a SIEM, at least once, end to end.

A durable pull consumer with explicit acks: each batch is written to the
destination first (here a JSON-lines file standing in for the SIEM's
ingest API) and acknowledged only after the write succeeded. A crash
between the write and the ack makes JetStream redeliver the batch after
`ack_wait`; the write is idempotent because it is keyed by the event id
(alertd's ids are deterministic), so redelivery never duplicates an event
in the destination. Do the same with a real SIEM: use the event id as the
document id (Elasticsearch/OpenSearch `_id`) or deduplicate on it.

    pip install nats-py
    python3 siem_subscriber.py --nats nats://127.0.0.1:4222 --out events.jsonl

Stop it with Ctrl-C; a restart resumes where the durable consumer left off.
"""

import argparse
import asyncio
import json
import os
import sys

import nats
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy


def event_id(event):
    """alertd v1 events carry `id`; OCSF findings carry it as `metadata.uid`."""
    return event.get("id") or event["metadata"]["uid"]


class JsonLinesSink:
    """The destination: appends events, at most once per event id."""

    def __init__(self, path):
        self.path = path
        self.ids = set()
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        self.ids.add(event_id(json.loads(line)))

    def write(self, events):
        """Write the batch durably (flush + fsync) before returning."""
        new = [e for e in events if event_id(e) not in self.ids]
        if not new:
            return 0
        with open(self.path, "a", encoding="utf-8") as f:
            for e in new:
                f.write(json.dumps(e, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.ids.update(event_id(e) for e in new)
        return len(new)


async def run(args):
    nc = await nats.connect(args.nats)
    js = nc.jetstream()
    config = ConsumerConfig(
        durable_name=args.durable,
        ack_policy=AckPolicy.EXPLICIT,  # nothing is done until we say so
        deliver_policy=DeliverPolicy.ALL,  # a new consumer starts at the beginning
        ack_wait=args.ack_wait,  # unacked messages come back after this
        max_deliver=-1,  # never give up on an event
        max_ack_pending=args.batch * 4,
    )
    sub = await js.pull_subscribe(args.subject, durable=args.durable, stream=args.stream, config=config)
    sink = JsonLinesSink(args.out)
    idle = 0.0
    written = 0
    redelivered = 0
    while args.idle_exit is None or idle < args.idle_exit:
        try:
            msgs = await sub.fetch(args.batch, timeout=1)
        except (NatsTimeout, asyncio.TimeoutError):
            idle += 1
            continue
        idle = 0.0
        redelivered += sum(1 for m in msgs if m.metadata.num_delivered > 1)
        events = [json.loads(m.data) for m in msgs]
        written += sink.write(events)  # 1. the destination has them
        if args.exit_before_ack_after is not None and written >= args.exit_before_ack_after:
            # Test hook: die between the write and the ack, like a crash.
            print(f"exiting before ack after {written} events", file=sys.stderr, flush=True)
            os._exit(3)
        for m in msgs:  # 2. only then tell JetStream
            await m.ack_sync()
    print(f"written {written} new events ({redelivered} redelivered)", file=sys.stderr)
    await nc.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nats", default="nats://127.0.0.1:4222")
    p.add_argument("--stream", default="ALERTD")
    p.add_argument("--subject", default="alertd.*.*.*", help="alertd v1 events (use alertd.ocsf.> for OCSF)")
    p.add_argument("--durable", default="siem-forwarder")
    p.add_argument("--out", required=True, help="JSON-lines file standing in for the SIEM")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--ack-wait", type=float, default=30.0, help="seconds before an unacked batch is redelivered")
    p.add_argument("--idle-exit", type=float, default=None, help="exit after this many idle seconds")
    p.add_argument("--exit-before-ack-after", type=int, default=None, help=argparse.SUPPRESS)
    try:
        asyncio.run(run(p.parse_args()))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
