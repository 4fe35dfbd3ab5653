"""Writes the built-in recommendation sample, in the MIND news-recommendation shape:

    tasks/samples/recommend_items.tsv        item_id, category, title, body
    tasks/samples/recommend_impressions.tsv  impression_id, user_id, history, impressions

`history` is the space-separated item ids a user clicked before (oldest first);
`impressions` lists the shown candidates as ITEM-1 (clicked) / ITEM-0 (not clicked).

Synthetic but structured: 160 news items over 8 categories with realistic titles; each
user has one or two interest categories, a history drawn mostly from them (some users
have none: cold start), and clicks candidates in their interests far more often than
others. Seeded and reproducible: python tasks/samples/make_recommend_sample.py
"""
import csv
import os
import random
import tempfile
from pathlib import Path

FILL = {
    "team": ["Rovers", "United", "City", "Athletic", "Wanderers", "Rangers", "Harriers",
             "Dynamo"],
    "company": ["Northwind Bank", "Helix Pharma", "Vega Motors", "Lumen Software",
                "Atlas Logistics", "Summit Energy", "Orion Telecom", "Aster Retail"],
    "gadget": ["smartphone", "laptop", "smartwatch", "tablet", "headphones", "e-reader",
               "games console", "drone"],
    "city": ["Lisbon", "Kyoto", "Reykjavik", "Cape Town", "Vancouver", "Marrakesh",
             "Tallinn", "Hanoi"],
    "dish": ["sourdough bread", "ramen", "lentil curry", "paella", "banana bread",
             "miso soup", "tacos", "risotto"],
    "condition": ["sleep", "heart health", "back pain", "allergies", "blood pressure",
                  "stress", "vitamin D", "running injuries"],
    "show": ["a space drama", "a crime series", "a fantasy saga", "a cooking contest",
             "a nature documentary", "a sitcom reboot", "a spy thriller", "a music biopic"],
    "policy": ["housing", "climate", "tax", "pension", "immigration", "education",
               "transport", "energy"],
}

CATEGORIES = {
    "sports": (["{team} beat {team2} in a late comeback to top the league",
                "Injury blow for {team} ahead of the cup final",
                "{team} sign a teenage striker on a five-year deal",
                "Coach of {team} sacked after a run of six defeats",
                "{team} and {team2} draw in a goalless derby"],
               "The match report, player ratings and what the result means for the title race."),
    "finance": (["{company} shares jump after profit beats forecasts",
                 "{company} cuts jobs as sales slow",
                 "Central bank holds rates, markets rally",
                 "{company} announces a share buyback and higher dividend",
                 "Analysts downgrade {company} on weak guidance"],
                "What investors need to know about earnings, markets and the economy."),
    "tech": (["Review: the new {gadget} is faster but pricier",
              "{company} unveils an AI assistant for its {gadget}",
              "How to get better battery life from your {gadget}",
              "Security flaw found in popular {gadget} software",
              "The best budget {gadget} you can buy this year"],
             "Hands-on impressions, specifications and buying advice."),
    "travel": (["48 hours in {city}: where to eat, stay and walk",
                "Cheap flights to {city} return for the winter",
                "Why {city} is the surprise destination of the year",
                "A rail journey from {city} to the coast",
                "Hidden beaches and quiet corners near {city}"],
               "A travel guide with itineraries, prices and local tips."),
    "food": (["The easiest {dish} recipe for weeknights",
              "Five mistakes everyone makes with {dish}",
              "A chef's guide to perfect {dish} at home",
              "Vegan {dish} that even sceptics will love",
              "Batch-cook {dish} for the whole week"],
             "Ingredients, step-by-step method and serving ideas."),
    "health": (["New study links {condition} to daily walking",
                "Doctors explain the myths about {condition}",
                "Simple habits that improve {condition}",
                "What to eat for better {condition}",
                "When to see a doctor about {condition}"],
               "Advice from clinicians and what the research says."),
    "entertainment": (["Streaming this week: {show} everyone is talking about",
                       "Review: {show} is the best thing on television",
                       "Cast announced for {show}",
                       "Why the finale of {show} divided fans",
                       "Behind the scenes of {show}"],
                      "Reviews, interviews and what to watch next."),
    "politics": (["Parliament votes on the new {policy} bill",
                  "Opposition attacks government over {policy} plans",
                  "What the {policy} reform means for families",
                  "Minister resigns amid row over {policy}",
                  "Poll: voters rank {policy} as a top concern"],
                 "Analysis of the debate, the votes and what happens next."),
}
SLOT = {"sports": "team", "finance": "company", "tech": "gadget", "travel": "city",
        "food": "dish", "health": "condition", "entertainment": "show", "politics": "policy"}


def make_items(rng: random.Random) -> list[dict]:
    items = []
    for category, (templates, body) in CATEGORIES.items():
        slot = SLOT[category]
        titles = set()
        while len(titles) < 20:
            a, b = rng.sample(FILL[slot], 2)
            values = {key: rng.choice(options) for key, options in FILL.items()}
            title = rng.choice(templates).format(**{**values, slot: a, f"{slot}2": b})
            titles.add(title)
        for title in sorted(titles):
            items.append({"item_id": f"N{len(items) + 1:04d}", "category": category,
                          "title": title, "body": body})
    return items


def write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)


def main() -> None:
    rng = random.Random(11)
    items = make_items(rng)
    by_category: dict[str, list[str]] = {}
    for item in items:
        by_category.setdefault(item["category"], []).append(item["item_id"])
    category_of = {item["item_id"]: item["category"] for item in items}
    all_ids = [item["item_id"] for item in items]
    impressions = []
    for u in range(250):
        interests = rng.sample(sorted(CATEGORIES), rng.choice([1, 2, 2]))
        liked = [i for c in interests for i in by_category[c]]
        n_history = 0 if rng.random() < 0.08 else rng.randint(3, 25)
        # Mostly interest items, some noise clicks.
        history = [rng.choice(liked) if rng.random() < 0.85 else rng.choice(all_ids)
                   for _ in range(n_history)]
        history = list(dict.fromkeys(history))
        for _ in range(rng.choice([1, 2, 2, 3])):
            pool = [i for i in all_ids if i not in history]
            candidates = rng.sample(pool, rng.randint(6, 12))
            if not any(category_of[c] in interests for c in candidates):
                candidates[0] = rng.choice([i for i in liked if i not in history])
            clicks = [int(rng.random() < (0.55 if category_of[c] in interests else 0.04))
                      for c in candidates]
            if not any(clicks):  # every impression has at least one click ...
                first = next(k for k, c in enumerate(candidates)
                             if category_of[c] in interests)
                clicks[first] = 1
            if all(clicks):  # ... and at least one skip
                candidates.append(rng.choice([i for i in pool if category_of[i] not in
                                              interests and i not in candidates]))
                clicks.append(0)
            impressions.append([f"I{len(impressions) + 1:05d}", f"U{u + 1:04d}",
                                " ".join(history),
                                " ".join(f"{c}-{k}" for c, k in zip(candidates, clicks))])
    out = Path(__file__).parent
    write_tsv(out / "recommend_items.tsv", ["item_id", "category", "title", "body"],
              [[i["item_id"], i["category"], i["title"], i["body"]] for i in items])
    write_tsv(out / "recommend_impressions.tsv",
              ["impression_id", "user_id", "history", "impressions"], impressions)
    print(f"{len(items)} items, {len(impressions)} impressions")


if __name__ == "__main__":
    main()
