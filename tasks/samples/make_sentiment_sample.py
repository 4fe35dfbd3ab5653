"""Writes tasks/samples/sentiment.csv: the built-in financial news sample (text, label, topic).

Template generation with fictional companies, seeded so the file is reproducible:
    python tasks/samples/make_sentiment_sample.py
It is a smoke-test default that runs offline, not a benchmark: held-out sentences share
templates with training sentences, so accuracy on it says little about real news.
"""
import csv
import os
import random
import tempfile
from pathlib import Path

COMPANIES = [
    "Northwind Bank", "Helix Pharma", "Cobalt Mining", "Aster Retail", "Vega Motors",
    "Orion Telecom", "Kestrel Airlines", "Summit Energy", "Lumen Software", "Harbor Insurance",
    "Pinecrest Foods", "Atlas Logistics", "Meridian Chemicals", "Bluewater Shipping",
    "Redwood Semiconductors", "Granite Construction Group", "Silverline Payments",
    "Falcon Aerospace", "Evergreen Utilities", "Quarry Steel",
]
BROKERS = ["Hollis & Grant", "Bayview Securities", "Marlow Capital", "Ridgeway Partners"]
AGENCIES = ["Crestline Ratings", "Norfolk Credit Research"]
INDICES = ["benchmark index", "blue-chip index", "broader market", "tech-heavy index"]
QUARTERS = ["the first quarter", "the second quarter", "the third quarter",
            "the fourth quarter", "the first half", "the fiscal year"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]

TEMPLATES = {
    ("negative", "earnings"): [
        "{co} swung to a net loss of {amt} million in {q}, hurt by weaker demand.",
        "{co} cut its full-year revenue guidance after sales fell {pct}% in {q}.",
        "Shares of {co} slumped {pct}% after quarterly profit missed analyst estimates.",
        "{co} reported a {pct}% drop in operating profit and suspended its dividend.",
        "Margins at {co} shrank in {q} as costs rose faster than prices.",
        "{co} warned that profit for {q} will fall well short of expectations.",
        "Net income at {co} fell {pct}% as loan losses mounted.",
        "{co} posted a wider-than-expected loss for {q} and withdrew its outlook.",
        "{co} posted record sales in {q}, but warned that margins will shrink sharply next year.",
        "Despite higher revenue, {co} saw profit slide {pct}% as costs ballooned.",
    ],
    ("neutral", "earnings"): [
        "{co} will report results for {q} on {day}.",
        "{co} reported revenue of {amt} million for {q}, in line with expectations.",
        "{co} kept its full-year outlook unchanged.",
        "{co} said sales in {q} were flat compared with a year earlier.",
        "{co} will hold a conference call with analysts on {day} to discuss {q}.",
        "{co} reports its earnings in euros and publishes results twice a year.",
        "The board of {co} proposed an unchanged dividend of {small} per share.",
        "{co} said it expects revenue for {q} to be roughly the same as last year.",
        "Gains in retail at {co} were offset by losses in wholesale, leaving profit flat.",
    ],
    ("positive", "earnings"): [
        "{co} raised its full-year profit forecast after a strong {q}.",
        "{co} posted record revenue in {q}, up {pct}% from a year ago.",
        "Shares of {co} jumped {pct}% after earnings beat estimates.",
        "{co} increased its quarterly dividend by {pct}%.",
        "Operating profit at {co} rose {pct}% on higher volumes and better pricing.",
        "{co} returned to profit in {q}, earning {amt} million.",
        "Strong demand lifted net income at {co} by {pct}% in {q}.",
        "{co} beat forecasts and announced a share buyback of {amt} million.",
        "Despite a {pct}% drop in revenue, {co} beat profit forecasts and raised guidance.",
        "{co} had a weak start to {q}, but a strong finish pushed earnings above estimates.",
    ],
    ("negative", "deals"): [
        "{co} abandoned its planned acquisition of {co2} after regulators raised objections.",
        "The merger between {co} and {co2} collapsed amid a dispute over valuation.",
        "{co} took a {amt} million writedown on its acquisition of {co2}.",
        "Regulators blocked the takeover of {co2} by {co}, sending its shares down {pct}%.",
        "{co} lost a major contract with {co2}, which accounts for {pct}% of its sales.",
        "{co2} rejected the bid from {co}, saying it undervalued the company.",
        "Integration costs from the {co2} deal pushed {co} into a loss.",
    ],
    ("neutral", "deals"): [
        "{co} said it is in talks with {co2} about a possible combination.",
        "{co} completed the sale of its logistics unit to {co2}.",
        "{co} appointed {broker} as adviser on the strategic review.",
        "{co} and {co2} expect the transaction to close in {q}.",
        "Shareholders of {co2} will vote on the offer from {co} on {day}.",
        "{co} confirmed it has received an approach from {co2} but no decision has been made.",
        "The deal between {co} and {co2} remains subject to regulatory approval.",
    ],
    ("positive", "deals"): [
        "{co} won a {amt} million contract from {co2}.",
        "Shares of {co2} surged {pct}% after {co} agreed to acquire it at a premium.",
        "{co} said the acquisition of {co2} will add to earnings from the first year.",
        "{co} and {co2} signed a partnership expected to lift sales by {pct}%.",
        "{co} secured regulatory approval for its purchase of {co2}, ahead of schedule.",
        "The merger with {co2} will create annual cost savings of {amt} million for {co}.",
        "{co} landed its largest ever order, worth {amt} million, from {co2}.",
    ],
    ("negative", "markets"): [
        "Stocks fell sharply as inflation data came in hotter than expected.",
        "The {idx} dropped {pct}% on fears of a slowing economy.",
        ("Bond yields jumped as investors priced in further rate hikes, hitting {co} and "
         "other banks."),
        "Oil prices slid {pct}% on weak demand, dragging energy stocks such as {co} lower.",
        "The {idx} posted its worst week since the spring as recession worries grew.",
        "Shares of {co} led losses as the {idx} slid {pct}% on {day}.",
        "Investors fled risky assets after weak factory data, and the {idx} tumbled.",
        "An early rally faded and the {idx} closed {pct}% lower as bank stocks like {co} sank.",
    ],
    ("neutral", "markets"): [
        "The {idx} closed little changed ahead of the central bank meeting.",
        "The central bank left interest rates unchanged, as expected.",
        "Trading volumes were light before the holiday weekend.",
        "The {idx} ended the week flat as investors waited for jobs data.",
        "{co} shares were unchanged on {day} in quiet trading.",
        "The currency traded in a narrow range against the dollar on {day}.",
        "Markets will be closed on {day} for the national holiday.",
    ],
    ("positive", "markets"): [
        "The {idx} rallied {pct}% to a record high on strong jobs data.",
        "Stocks climbed as inflation eased more than expected.",
        "Shares of {co} led gains as the {idx} rose {pct}% on {day}.",
        "Investors cheered the rate cut, sending the {idx} up {pct}%.",
        "Bank stocks including {co} rallied after the economy grew faster than forecast.",
        "The {idx} notched its best month of the year on upbeat earnings.",
        "Oil prices recovered {pct}%, lifting energy shares such as {co}.",
        "After a weak open, the {idx} recovered to close {pct}% higher, led by {co}.",
    ],
    ("negative", "analyst"): [
        "{broker} downgraded {co} to sell, citing weak margins.",
        "{agency} cut the credit rating of {co} to junk.",
        "{broker} slashed its price target on {co} by {pct}%.",
        "Analysts lowered their estimates for {co} after a profit warning.",
        "{agency} put {co} on review for a downgrade because of rising debt.",
        "{broker} said {co} faces a difficult year and cut its rating to underweight.",
        "Analysts at {broker} warned that {co} could breach its debt covenants.",
    ],
    ("neutral", "analyst"): [
        "{broker} initiated coverage of {co} with a hold rating.",
        "{broker} maintained its neutral rating on {co}.",
        "{agency} affirmed the rating of {co} with a stable outlook.",
        "Analysts expect {co} to report earnings of {small} per share.",
        "{broker} kept its price target on {co} unchanged.",
        "{co} is covered by {n} analysts, most of whom rate it a hold.",
        "{agency} said its rating on {co} is not affected by the management change.",
    ],
    ("positive", "analyst"): [
        "{broker} upgraded {co} to buy, citing improving margins.",
        "{broker} raised its price target on {co} by {pct}%.",
        "{agency} upgraded the credit rating of {co} after it cut debt.",
        "Analysts raised their forecasts for {co} after strong orders.",
        "{broker} added {co} to its list of top picks for the year.",
        "{agency} revised its outlook on {co} to positive on strong cash flow.",
        "Analysts at {broker} said {co} is well placed to gain market share.",
    ],
}
# Real financial news is mostly neutral; keep that imbalance (and so the class-weight knob real).
PER_CELL = {"negative": 40, "neutral": 60, "positive": 48}


def fill(template: str, rng: random.Random) -> str:
    co, co2 = rng.sample(COMPANIES, 2)
    return template.format(
        co=co, co2=co2, broker=rng.choice(BROKERS), agency=rng.choice(AGENCIES),
        idx=rng.choice(INDICES), q=rng.choice(QUARTERS), day=rng.choice(DAYS),
        pct=rng.choice([2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 14, 15, 18, 20, 25]),
        amt=rng.choice([12, 35, 48, 90, 120, 250, 310, 480, 650, 900]),
        small=rng.choice(["0.12", "0.35", "0.50", "1.10", "2.05"]), n=rng.randint(5, 25))


def generate(seed: int = 20261124) -> list[dict]:
    rng = random.Random(seed)
    rows, seen = [], set()
    for (label, topic), templates in TEMPLATES.items():
        made, tries = 0, 0
        while made < PER_CELL[label] and tries < 10000:
            tries += 1
            text = fill(rng.choice(templates), rng)
            if text not in seen:
                seen.add(text)
                rows.append({"text": text, "label": label, "topic": topic})
                made += 1
    rng.shuffle(rows)
    return rows


def main() -> None:
    out = Path(__file__).with_name("sentiment.csv")
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label", "topic"])
        writer.writeheader()
        writer.writerows(generate())
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
