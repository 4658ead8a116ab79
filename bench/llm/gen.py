#!/usr/bin/env python3
"""gen.py USER_ID [DAYS] [PER_DAY] — a synthetic chat history for
bench/llm/run: DAYS days (default 1825, five years) of PER_DAY messages
(default 8: four user messages and four answers), as `unde-shard save`
lines of at most 200 messages, oldest first. Sentences are drawn from a
fashion vocabulary with a fixed seed, so every run builds the same shard."""
import json
import random
import sys
import uuid
from datetime import datetime, timedelta, timezone

user = sys.argv[1]
days = int(sys.argv[2]) if len(sys.argv) > 2 else 1825
per_day = int(sys.argv[3]) if len(sys.argv) > 3 else 8
rng = random.Random(20261202)
start = datetime(2026, 12, 1, tzinfo=timezone.utc) - timedelta(days=days)
subj = ["пальто", "шарф", "платье", "джинсы", "кроссовки", "рубашка", "сумка", "юбка плиссе",
        "пиджак", "свитер", "ботинки", "куртка", "блузка", "брюки", "кардиган"]
adj = ["льняное", "шерстяной", "синий", "бежевый", "чёрный", "оверсайз", "короткий", "тёплый",
       "лёгкий", "классический", "яркий", "винтажный"]
tail = ["на работу", "на свидание", "в кино", "на выходные", "в отпуск", "к дождю", "на вечер",
        "для прогулки", "в офис", "на праздник"]
lead = ["Хочу", "Ищу", "Мне нравится", "Купила", "Не люблю", "Подруга советует", "Думаю про",
        "Вчера примерила"]
batch = []
for d in range(days):
    day = start + timedelta(days=d)
    for k in range(per_day // 2):
        at = day + timedelta(hours=9 + k * 3, minutes=rng.randrange(60))
        text = "%s %s %s %s" % (rng.choice(lead), rng.choice(adj), rng.choice(subj), rng.choice(tail))
        batch.append({"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "role": "user",
                      "content": text, "created_at": at.isoformat()})
        batch.append({"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "role": "assistant",
                      "content": "Давай подберём %s %s." % (rng.choice(subj), rng.choice(tail)),
                      "created_at": (at + timedelta(seconds=20)).isoformat()})
        if len(batch) >= 200:
            print(json.dumps({"user_id": user, "messages": batch}, ensure_ascii=False))
            batch = []
if batch:
    print(json.dumps({"user_id": user, "messages": batch}, ensure_ascii=False))
