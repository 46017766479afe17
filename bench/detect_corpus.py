#!/usr/bin/env python3
"""Builds the corpus of `cargo xtask bench detect`: one JSON Lines file that every tool reads.

Each line: {"id", "group", "format": "json"|"form"|"text", "text", "expected": [{"kind", "value"}]}.
Sensitive documents are built around the labeled vectors (valid ones are expected, invalid
lookalikes are embedded but must not be reported); filler documents are generated API JSON with
no sensitive data at all (false positives and throughput). Deterministic for a given seed.
"""

import argparse
import json
import random
import string
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone

# Field names that say what the value is, per kind; and names that say nothing.
MEANINGFUL = {
    "iban": ["iban", "debtorIban", "payee_iban", "creditorAccountIban"],
    "card": ["card_number", "pan", "cardNumber", "creditCard"],
    "aws_access_key_id": ["aws_access_key_id", "accessKeyId", "AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": ["aws_secret_access_key", "secretAccessKey", "AWS_SECRET_ACCESS_KEY"],
    "jwt": ["access_token", "id_token", "token", "jwt"],
}
NEUTRAL = ["value", "data", "text", "attr", "field_7", "payload", "v"]

TEXTS = {
    "iban": [
        "Please transfer the deposit to {v} before Friday, reference INV-{n}.",
        "Beneficiary account: {v} (verified by support agent #{n})",
    ],
    "card": [
        "Customer says the card {v} was declined twice at checkout on order {n}.",
        "charge failed: card={v} amount=42.10 EUR attempt={n}",
    ],
    "aws_access_key_id": [
        "2024-05-01T10:22:01Z WARN deploy-bot used key {v} from 10.0.3.{n} to upload artifacts",
        "Rotate the credentials: old access key {v} must be disabled today.",
    ],
    "aws_secret_access_key": [
        "export AWS_SECRET_ACCESS_KEY={v}  # do not commit (ticket {n})",
        "The secret for the backup user is {v} — please store it in the vault.",
    ],
    "jwt": [
        "GET /api/v1/me failed with 401; the token was {v} (request {n})",
        "Use this session token for the demo: {v}",
    ],
}

WORDS = (
    "alpha ultra smart compact wireless classic organic premium steel bamboo travel pro mini max "
    "eco lite deluxe vintage modern urban outdoor kitchen office garden sport studio home"
).split()
NOUNS = (
    "lamp kettle backpack headphones blender chair desk mug bottle jacket sneakers charger speaker "
    "tripod notebook pen watch camera router monitor keyboard mouse blanket pillow tent"
).split()
CURRENCIES = ["EUR", "GBP", "USD", "CHF", "SEK", "PLN", "JPY"]
STATUSES = ["pending", "paid", "shipped", "delivered", "cancelled", "refunded"]
HOSTS = ["shop.example.com", "cdn.example.net", "api.example.org", "img.example-cdn.com"]


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)

    def uuid(self):
        return str(uuid.UUID(int=self.r.getrandbits(128), version=4))

    def ts(self):
        t = self.t0 + timedelta(seconds=self.r.randrange(0, 365 * 86400), milliseconds=self.r.randrange(1000))
        return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def epoch_ms(self):
        return 1_704_067_200_000 + self.r.randrange(0, 365 * 86_400_000)

    def snowflake(self):
        return self.r.randrange(1_000_000_000_000_000_000, 1_999_999_999_999_999_999)

    def price(self):
        return round(self.r.uniform(0.5, 2500), 2)

    def name(self):
        return f"{self.r.choice(WORDS).title()} {self.r.choice(WORDS).title()} {self.r.choice(NOUNS).title()}"

    def sku(self):
        letters = "".join(self.r.choices(string.ascii_uppercase, k=3))
        return f"{letters}-{self.r.randrange(1000, 9999)}-{self.r.choice(['S', 'M', 'L', 'XL', 'BLK', 'WHT'])}"

    def sha256(self):
        return "%064x" % self.r.getrandbits(256)

    def cursor(self):
        raw = bytes(self.r.getrandbits(8) for _ in range(18))
        import base64

        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def url(self):
        path = "/".join(self.r.choice(NOUNS + WORDS) for _ in range(self.r.randrange(1, 4)))
        q = f"?w={self.r.choice([320, 640, 1280])}&v={self.r.randrange(1, 40)}" if self.r.random() < 0.5 else ""
        return f"https://{self.r.choice(HOSTS)}/{path}/{self.r.randrange(1, 99999)}.jpg{q}"

    def product(self):
        return {
            "id": self.r.randrange(1, 10_000_000),
            "uuid": self.uuid(),
            "sku": self.sku(),
            "name": self.name(),
            "price": {"amount": self.price(), "currency": self.r.choice(CURRENCIES)},
            "stock": self.r.randrange(0, 500),
            "rating": round(self.r.uniform(1, 5), 1),
            "images": [self.url() for _ in range(self.r.randrange(1, 4))],
            "tags": self.r.sample(WORDS, self.r.randrange(1, 5)),
            "updated_at": self.ts(),
            "checksum": self.sha256(),
        }

    def order(self):
        lines = [
            {"product_id": self.r.randrange(1, 10_000_000), "sku": self.sku(), "qty": self.r.randrange(1, 6),
             "unit_price": self.price()}
            for _ in range(self.r.randrange(1, 6))
        ]
        return {
            "order_id": self.snowflake(),
            "status": self.r.choice(STATUSES),
            "created_at": self.ts(),
            "created_ms": self.epoch_ms(),
            "lines": lines,
            "total": round(sum(l["qty"] * l["unit_price"] for l in lines), 2),
            "currency": self.r.choice(CURRENCIES),
            "shipping": {"carrier": self.r.choice(["dhl", "ups", "dpd", "postnl"]),
                         "tracking_number": f"1Z{self.r.randrange(10**15, 10**16 - 1)}",
                         "eta": self.ts()[:10]},
            "links": {"self": self.url(), "invoice": self.url()},
        }

    def event(self):
        return {
            "event_id": self.uuid(),
            "type": self.r.choice(["page_view", "add_to_cart", "search", "checkout_started", "login"]),
            "ts": self.epoch_ms(),
            "session": self.uuid(),
            "page": self.url(),
            "duration_ms": self.r.randrange(1, 30000),
            "client": {"app_version": f"{self.r.randrange(1, 9)}.{self.r.randrange(0, 30)}.{self.r.randrange(0, 99)}",
                       "locale": self.r.choice(["en-GB", "de-DE", "fr-FR", "nl-NL", "sv-SE"])},
        }

    def filler_doc(self):
        kind = self.r.choice(["products", "orders", "events"])
        n = self.r.randrange(1, 12)
        make = {"products": self.product, "orders": self.order, "events": self.event}[kind]
        return {
            "data": [make() for _ in range(n)],
            "page": {"size": n, "next_cursor": self.cursor(), "total": self.r.randrange(n, 100000)},
            "request_id": self.uuid(),
            "generated_at": self.ts(),
        }

    def card(self, valid=True):
        prefix, length = self.r.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15),
                                        ("6011", 16), (str(self.r.randrange(3528, 3590)), 16), ("4", 13)])
        body = prefix + "".join(self.r.choices(string.digits, k=length - len(prefix) - 1))
        total = 0
        for i, ch in enumerate(reversed(body)):
            d = int(ch)
            if i % 2 == 0:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        check = (10 - total % 10) % 10
        if not valid:
            check = (check + self.r.randrange(1, 10)) % 10
        return body + str(check)

    def aws_key_id(self, valid=True):
        n = 16 if valid else self.r.choice([15, 17])
        return self.r.choice(["AKIA", "ASIA"]) + "".join(self.r.choices(string.ascii_uppercase + "234567", k=n))

    def aws_secret(self):
        return "".join(self.r.choices(string.ascii_letters + string.digits + "+/", k=39)) + self.r.choice("abcXYZ019")

    def jwt(self, valid=True):
        import base64

        def b64(obj):
            raw = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        alg = self.r.choice(["HS256", "RS256", "ES256"])
        header = {"alg": alg, "typ": "JWT"} if valid else {"typ": "JWT", "kid": self.uuid()[:self.r.randrange(4, 20)]}
        claims = {"sub": str(self.r.randrange(10**6)), "iat": self.epoch_ms() // 1000,
                  "scope": self.r.choice(["read", "read write", "admin"])}
        sig = bytes(self.r.getrandbits(8) for _ in range(32 if alg == "HS256" else 64))
        return f"{b64(header)}.{b64(claims)}.{b64(sig)}"

    def context(self):
        """A few realistic neighbouring fields for a sensitive value."""
        return {"id": self.uuid(), "amount": str(self.price()), "currency": self.r.choice(CURRENCIES),
                "created_at": self.ts(), "status": self.r.choice(STATUSES)}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--vectors", required=True)
    ap.add_argument("--out", required=True, help="output JSON Lines file")
    ap.add_argument("--filler-mb", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=20240501)
    args = ap.parse_args()

    g = Gen(args.seed)
    vectors = []
    with open(args.vectors, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                vectors.append(json.loads(line))
    docs = []

    def add(group, fmt, text, expected):
        docs.append({"id": len(docs), "group": group, "format": fmt, "text": text, "expected": expected})

    # The vectors hold one AWS key pair, one JWT and ten cards: generated values of the same shapes
    # (and lookalikes that must not be reported) make those kinds measurable.
    synthetic = []
    for _ in range(24):
        synthetic += [
            {"kind": "card", "value": g.card(), "valid": True, "synthetic": True},
            {"kind": "aws_access_key_id", "value": g.aws_key_id(), "valid": True, "synthetic": True},
            {"kind": "aws_secret_access_key", "value": g.aws_secret(), "valid": True, "synthetic": True},
            {"kind": "jwt", "value": g.jwt(), "valid": True, "synthetic": True},
        ]
    for _ in range(8):
        synthetic += [
            {"kind": "card", "value": g.card(valid=False), "valid": False, "synthetic": True},
            {"kind": "aws_access_key_id", "value": g.aws_key_id(valid=False), "valid": False, "synthetic": True},
            {"kind": "jwt", "value": g.jwt(valid=False), "valid": False, "synthetic": True},
        ]

    for i, v in enumerate(vectors + synthetic):
        kind, value = v["kind"], v["value"]
        exp = [{"kind": kind, "value": value}] if v["valid"] else []
        tag = ("synthetic-" if v.get("synthetic") else "") + ("valid" if v["valid"] else "invalid")
        name = MEANINGFUL[kind][i % len(MEANINGFUL[kind])]
        neutral = NEUTRAL[i % len(NEUTRAL)]
        # JSON: the value under a meaningful name, nested among ordinary fields.
        body = g.context()
        body[name] = value
        add(f"{tag}/json-named", "json", json.dumps({"payment": body}), exp)
        # JSON: the value under a neutral name, inside a list of ordinary records.
        rows = [g.product() for _ in range(2)]
        rows[1][neutral] = value
        add(f"{tag}/json-neutral", "json", json.dumps({"items": rows, "request_id": g.uuid()}), exp)
        # Form body (application/x-www-form-urlencoded, as a browser encodes it).
        form = [("amount", str(g.price())), ("currency", "EUR"), (name, value), ("note", "thanks")]
        add(f"{tag}/form", "form", urllib.parse.urlencode(form), exp)
        # Free text.
        for t in TEXTS[kind]:
            add(f"{tag}/text", "text", t.format(v=value, n=g.r.randrange(100, 99999)), exp)

    # Documents holding several values of different kinds.
    valid = [v for v in vectors if v["valid"]]
    for _ in range(40):
        picks = g.r.sample(valid, 3)
        body = {"customer": {"id": g.uuid(), "since": g.ts()}, "payments": []}
        for j, p in enumerate(picks):
            row = g.context()
            row[MEANINGFUL[p["kind"]][j % len(MEANINGFUL[p["kind"]])]] = p["value"]
            body["payments"].append(row)
        add("valid/json-mixed", "json", json.dumps(body),
            [{"kind": p["kind"], "value": p["value"]} for p in picks])

    budget = int(args.filler_mb * 1_000_000)
    size = 0
    while size < budget:
        text = json.dumps(g.filler_doc())
        size += len(text.encode())
        add("filler/json", "json", text, [])

    with open(args.out, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")


if __name__ == "__main__":
    main()
