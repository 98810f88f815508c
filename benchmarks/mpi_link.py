"""The patient master index on a synthetic registry: linking rate and quality.

    python -m benchmarks.mpi_link --persons 2000

Each synthetic person gets 1-3 records in different systems; a second record may carry a
homophone character, a missing or typo'd birth date, a phone, or the resident ID number. It
reports records/s through `PatientIndex.observe` (one transaction each, as POST /api/mpi/observe) or
`observe_many` (--batch, as the ingest feeder and the rebuild; SQLite app-state store, one thread) and, over
record pairs, the precision and recall of automatic links plus how many went to review.
"""
from __future__ import annotations

import argparse
import random
import tempfile
import time
from itertools import combinations
from pathlib import Path

from yunying.auth.store import open_store
from yunying.mpi.facts import PatientFacts
from yunying.mpi.linker import PatientIndex
from yunying.pii import keys_for
from yunying.records import idcard

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉宇浩凯健俊帆晨阳欣怡婷雪琳"
HOMOPHONES = {"张": "章", "王": "汪", "刘": "柳", "李": "黎", "陈": "程", "伟": "玮", "芳": "方", "静": "晶",
              "丽": "莉", "洋": "阳", "杰": "洁", "明": "铭", "华": "桦", "玉": "钰", "婷": "亭"}


def person(rng: random.Random, n: int) -> dict[str, str]:
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
    birth = f"{rng.randint(1940, 2020)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    first17 = f"{rng.randint(110000, 659999)}{birth}{rng.randint(0, 999):03d}"
    return {"name": name, "sex": rng.choice("MF"), "birth": birth, "phone": f"13{rng.randint(0, 999999999):09d}",
            "id": first17 + idcard.check_character(first17), "key": str(n)}


def records(rng: random.Random, p: dict[str, str]) -> list[PatientFacts]:
    out = []
    for k in range(rng.choice((1, 2, 2, 3))):
        name, birth = p["name"], p["birth"]
        if k and rng.random() < 0.2:  # a clerk's homophone
            name = "".join(HOMOPHONES.get(c, c) for c in name)
        if k and rng.random() < 0.1:
            birth = birth[:6] + f"{(int(birth[6:]) % 28) + 1:02d}"  # a typo in the day
        out.append(PatientFacts(f"sys{k}", f"ISSUER{k}", f"{p['key']}-{k}", f"h{k}", name, p["sex"], birth,
                                p["id"] if rng.random() < 0.4 else "", p["phone"] if rng.random() < 0.5 else ""))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--batch", type=int, default=1, help="records per transaction (the ingest feeder uses 256)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    truth: dict[tuple[str, str], str] = {}
    facts: list[PatientFacts] = []
    for n in range(args.persons):
        p = person(rng, n)
        for f in records(rng, p):
            truth[(f.issuer, f.patient_id)] = p["key"]
            facts.append(f)
    rng.shuffle(facts)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        index = PatientIndex(open_store(data).engine, keys_for(data))
        start = time.perf_counter()
        outcomes = [o for i in range(0, len(facts), args.batch) for o in (
            index.observe_many(facts[i:i + args.batch]) if args.batch > 1 else [index.observe(facts[i])])]
        took = time.perf_counter() - start
        found = {(f.issuer, f.patient_id): index.person_of(f.issuer, f.patient_id) for f in facts}
    same_true = {(min(a, b), max(a, b)) for a, b in combinations(truth, 2) if truth[a] == truth[b]}
    by_person: dict[str | None, list[tuple[str, str]]] = {}
    for key, person_id in found.items():
        by_person.setdefault(person_id, []).append(key)
    same_found = {(min(a, b), max(a, b)) for keys in by_person.values() for a, b in combinations(keys, 2)}
    tp = len(same_found & same_true)
    reviews = sum(1 for o in outcomes if o.link == "review")
    print(f"batch {args.batch}: {len(facts)} records of {args.persons} persons in {took:.1f} s: {len(facts) / took:.0f} records/s")
    print(f"pairs linked {len(same_found)}, true {len(same_true)}: precision {tp / max(1, len(same_found)):.3f}, "
          f"recall {tp / max(1, len(same_true)):.3f}; {reviews} sent to review")


if __name__ == "__main__":
    main()
