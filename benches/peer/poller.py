#!/usr/bin/env python3
"""The poller a user would write instead of alertd, for the e2e benchmark.

Backfills CanaryGuard alerts (page/limit, newest first, inside a time
window) into NATS JetStream, with the same guarantee alertd gives: every
page is published with a message id (JetStream dedup), its acks are awaited,
and only then is the cursor committed to SQLite. A restart resumes at the
committed page. Plain, idiomatic code: requests for HTTP, nats-py for
JetStream (publish_async, acks gathered per page), sqlite3 from the standard
library. Not tuned, not deliberately slow.

    CANARYGUARD_API_KEY=... poller.py --base-url URL --nats URL --state FILE
"""

import argparse
import asyncio
import json
import os
import sqlite3
from datetime import datetime, timedelta, timezone

import nats
import requests
from nats.js.api import StorageType, StreamConfig


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def open_state(path):
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS cursor (source TEXT PRIMARY KEY,"
        " after TEXT NOT NULL, before TEXT NOT NULL, page INTEGER NOT NULL)"
    )
    return db


def load_cursor(db, source, lookback):
    row = db.execute("SELECT after, before, page FROM cursor WHERE source = ?", (source,)).fetchone()
    if row:
        return row
    now = datetime.now(timezone.utc)
    return iso(now - lookback), iso(now), 1


def save_cursor(db, source, after, before, page):
    with db:  # one transaction, committed on exit
        db.execute(
            "INSERT INTO cursor (source, after, before, page) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(source) DO UPDATE SET after = excluded.after,"
            " before = excluded.before, page = excluded.page",
            (source, after, before, page),
        )


def to_event(source, alert):
    return {
        "id": f"canaryguard:{source}:{alert['id']}",
        "vendor": "canaryguard",
        "source": source,
        "kind": "alert",
        "time": alert["triggered_at"],
        "title": f"{alert.get('token_type', 'token')} token {alert.get('token_name', '?')} triggered",
        "severity": "high",
        "src_ip": alert.get("source_ip"),
        "raw": alert,
    }


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--nats", default="nats://127.0.0.1:4222")
    ap.add_argument("--state", default="poller.sqlite")
    ap.add_argument("--source", default="peer")
    ap.add_argument("--stream", default="PEER")
    ap.add_argument("--page-size", type=int, default=100)
    ap.add_argument("--lookback-hours", type=float, default=72)
    args = ap.parse_args()

    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {os.environ['CANARYGUARD_API_KEY']}"
    nc = await nats.connect(args.nats)
    js = nc.jetstream()
    subject = f"peer.canaryguard.{args.source}.alert"
    await js.add_stream(StreamConfig(name=args.stream, subjects=["peer.>"], storage=StorageType.FILE))
    db = open_state(args.state)

    after, before, page = load_cursor(db, args.source, timedelta(hours=args.lookback_hours))
    published = 0
    while True:
        response = http.get(
            f"{args.base_url}/api/v1/alerts",
            params={"page": page, "limit": args.page_size, "after": after, "before": before},
            timeout=30,
        )
        response.raise_for_status()
        body = response.json()
        alerts = body["data"]
        if alerts:
            acks = []
            for alert in alerts:
                event = to_event(args.source, alert)
                acks.append(
                    await js.publish_async(
                        subject, json.dumps(event).encode(), headers={"Nats-Msg-Id": event["id"]}
                    )
                )
            await asyncio.gather(*acks)  # every ack of the page before the cursor moves
            published += len(alerts)
        done = not alerts or page * body["meta"]["limit"] >= body["meta"]["total"]
        if done:
            # The window is complete: the next run starts where it ended.
            save_cursor(db, args.source, before, iso(datetime.now(timezone.utc)), 1)
            break
        page += 1
        save_cursor(db, args.source, after, before, page)

    await nc.close()
    print(json.dumps({"published": published}))


if __name__ == "__main__":
    asyncio.run(main())
