#!/usr/bin/env python3
"""Deterministic generator of realistic client records (KYC individuals and KYB
companies with persons and beneficial owners), one JSON object per line.

    scripts/gen_records.py --count 1000 --kyb-ratio 0.4 --seed 7 --prefix RUN1 > records.jsonl
"""
import argparse
import json
import random
import sys

FIRST = ["Camille", "Jonas", "Lea", "Sofia", "Pieter", "Ana", "Mateo", "Ines", "Lukas", "Emma",
         "Noah", "Chloe", "Hugo", "Mila", "Oskar", "Elena", "Tomas", "Nora", "Luca", "Sara"]
LAST = ["Durand", "Becker", "Hoffmann", "Rossi", "de Vries", "Garcia", "Silva", "Novak", "Jensen",
        "Martin", "Moreau", "Schmidt", "Bianchi", "Kowalski", "Dubois", "Fischer", "Costa", "Lind"]
COUNTRIES = ["FR", "DE", "IT", "NL", "ES", "PT", "BE", "LU", "AT", "IE", "SE", "DK", "PL", "CH", "GB"]
CITIES = ["Lyon", "Hamburg", "Milano", "Utrecht", "Sevilla", "Porto", "Gent", "Esch", "Graz", "Cork"]
SECTORS = ["Freight transport", "Software publishing", "Wholesale of food", "Construction",
           "Financial consulting", "Retail of clothing", "Renewable energy", "Hospitality"]
BUSINESS = ["LIMITED_COMPANY", "PUBLIC_LIMITED_COMPANY", "PARTNERSHIP", "SOLE_TRADER"]
CONTROLS = ["SHARES", "VOTING_RIGHTS", "APPOINT_DIRECTORS", "SIGNIFICANT_INFLUENCE"]


def date(rng, y0, y1):
    return "%04d-%02d-%02d" % (rng.randint(y0, y1), rng.randint(1, 12), rng.randint(1, 28))


def person(rng, role):
    first, last = rng.choice(FIRST), rng.choice(LAST)
    country = rng.choice(COUNTRIES)
    return {
        "firstname": first, "lastname": last, "birthdate": date(rng, 1940, 2004), "role": role,
        "email": "%s.%s@example.org" % (first.lower(), last.lower().replace(" ", "")),
        "phone": "+%d %09d" % (rng.randint(30, 49), rng.randint(0, 999999999)),
        "nationality": country,
        "address": {"street": "%d Main Street" % rng.randint(1, 200), "city": rng.choice(CITIES),
                    "postal_code": "%05d" % rng.randint(1000, 99999), "country": country},
    }


def record(rng, i, prefix, kyb):
    rec = {"client_id": "%s-%06d" % (prefix, i), "case_type": "STANDARD", "case_version": 1,
           "traitement_type": "KYB" if kyb else "KYC"}
    if not kyb:
        rec["persons"] = [person(rng, "APPLICANT")]
        if rng.random() < 0.2:
            rec["persons"].append(person(rng, "CO_APPLICANT"))
        return rec
    country = rng.choice(COUNTRIES)
    rec["company_profile"] = {
        "registered_name": "%s %s %d" % (rng.choice(LAST), rng.choice(["Holding", "Trading", "Services"]), i),
        "trading_name": rng.choice(LAST),
        "registration_number": "REG-%08d" % rng.randint(0, 99999999),
        "registration_date": date(rng, 1990, 2024),
        "country_of_incorporation": country,
        "registered_address": {"street": "%d Harbour Road" % rng.randint(1, 99), "city": rng.choice(CITIES),
                               "postal_code": "%05d" % rng.randint(1000, 99999), "country": country},
        "business_type": rng.choice(BUSINESS),
        "industry_sector": rng.choice(SECTORS),
    }
    rec["persons"] = [person(rng, "DIRECTOR")]
    owners, left = [], 100
    for _ in range(rng.randint(1, 3)):
        share = rng.randint(5, max(5, left)) if left >= 5 else 0
        left -= share
        p = person(rng, "SHAREHOLDER")
        owners.append({"person_details": {k: p[k] for k in ("firstname", "lastname", "birthdate", "nationality")},
                       "ownership_percentage": share,
                       "types_of_control": rng.sample(CONTROLS, rng.randint(1, 2)),
                       "is_ubo": share >= 25})
    rec["beneficial_owners"] = owners
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--kyb-ratio", type=float, default=0.4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--prefix", default="GEN")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = sys.stdout
    for i in range(args.count):
        out.write(json.dumps(record(rng, i, args.prefix, rng.random() < args.kyb_ratio),
                             separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
