"""Writes the built-in customer-service QA sample for a fictional retail bank:

    tasks/samples/qa_answers.csv     answer_id, answer      (the FAQ bank, 32 answers)
    tasks/samples/qa_train.csv       question, answer_id
    tasks/samples/qa_validation.csv  question, answer_id
    tasks/samples/qa_test.csv        question, answer_id

Every answer has five hand-written paraphrased questions. Paraphrases 1-3 go to training,
4 to validation and 5 to test, each with seeded surface variants (greetings, casing,
punctuation), so held-out questions are wordings the model never saw, not copies.
Reproducible: python tasks/samples/make_qa_sample.py
"""
import csv
import os
import random
import tempfile
from pathlib import Path

# answer_id: (answer text, [five paraphrased questions])
FAQ = {
    # --- billing ---------------------------------------------------------------------
    "billing_monthly_fee": (
        "The Everyday account costs 4 euros a month. The fee is waived in any month in which "
        "at least 1,000 euros is paid into the account.",
        ["How much is the monthly account fee?",
         "Why am I charged 4 euros every month?",
         "What does the account cost per month?",
         "Is there a way to avoid paying the monthly maintenance charge?",
         "What is this recurring 4 euro charge on my statement?"]),
    "billing_overdraft_interest": (
        "Arranged overdrafts cost 19.9% a year, charged daily on the overdrawn balance and "
        "taken on the first business day of the next month.",
        ["What interest do you charge on an overdraft?",
         "How is overdraft interest calculated?",
         "Why was I charged interest after going below zero?",
         "What is the rate for using my arranged overdraft?",
         "I went overdrawn last month, how much will it cost me?"]),
    "billing_refund_fee": (
        "If you think a fee was charged in error, open the transaction in the app and tap "
        "'Dispute this fee'. We review requests within 5 business days and refund the fee "
        "if it was applied by mistake.",
        ["Can I get a refund for a fee I was charged by mistake?",
         "How do I dispute a bank charge?",
         "You charged me a fee that is wrong, how do I get it back?",
         "I want to contest a fee on my account.",
         "A charge was applied in error, can it be reversed?"]),
    "billing_statement_download": (
        "Statements for the last 7 years are under Account > Statements in the app or online "
        "banking. Choose a month and download it as a PDF.",
        ["Where can I download my bank statements?",
         "How do I get a PDF of last month's statement?",
         "I need statements for my mortgage application, where are they?",
         "Can I see my old account statements online?",
         "How to export an account statement?"]),
    "billing_foreign_fee": (
        "Card payments in other currencies are converted at the network rate plus a 1.5% "
        "foreign transaction fee. Payments in euros anywhere in the EU have no fee.",
        ["Do you charge a fee for paying in a foreign currency?",
         "What are the charges for using my card abroad?",
         "Why did I pay extra for a purchase in dollars?",
         "Is there a foreign transaction fee on my debit card?",
         "How much does it cost to shop online from a US store?"]),
    "billing_change_plan": (
        "You can switch between the Everyday, Plus and Premium plans under Profile > Plan. "
        "The new plan and its fee start on the first day of next month.",
        ["How do I upgrade my account plan?",
         "Can I downgrade from Premium to a cheaper plan?",
         "I want to change my subscription tier.",
         "How do I switch to the Plus account?",
         "When does a plan change take effect?"]),
    # --- cards -----------------------------------------------------------------------
    "card_lost_stolen": (
        "Freeze your card straight away under Cards > Freeze, then report it lost or stolen "
        "there. We cancel it and send a replacement within 3 to 5 business days.",
        ["I lost my card, what should I do?",
         "My wallet was stolen with my debit card inside.",
         "How do I report a stolen card?",
         "I can't find my card anywhere, can you block it?",
         "Someone took my bank card, please help."]),
    "card_declined": (
        "Payments are most often declined because the card is frozen, the daily limit is "
        "reached, the balance is too low or the merchant is blocked. The app shows the reason "
        "under the declined transaction.",
        ["Why was my card declined?",
         "My payment at the supermarket didn't go through.",
         "The shop said my card was refused, why?",
         "My card keeps getting rejected online.",
         "Transaction failed at the checkout, what is wrong with my card?"]),
    "card_pin_reset": (
        "You can view your PIN in the app under Cards > Show PIN after confirming with your "
        "fingerprint or passcode. To change it, use any of our ATMs.",
        ["I forgot my PIN.",
         "How can I see my card PIN?",
         "How do I change the PIN of my debit card?",
         "I don't remember my PIN number, can you send it?",
         "My PIN is blocked after three wrong tries."]),
    "card_activate": (
        "A new card is activated by making a chip and PIN payment or an ATM withdrawal, or "
        "instantly in the app under Cards > Activate.",
        ["How do I activate my new card?",
         "My replacement card arrived, what do I do now?",
         "The new card doesn't work yet.",
         "Do I need to activate the card before using it?",
         "How to start using the card I just received?"]),
    "card_contactless_limit": (
        "Single contactless payments are limited to 50 euros. Above that, or after several "
        "contactless payments in a row, the terminal asks for your PIN.",
        ["What is the contactless payment limit?",
         "Why did the terminal ask for my PIN on a tap payment?",
         "How much can I pay by tapping my card?",
         "Contactless doesn't work for bigger amounts, why?",
         "Is there a maximum for tap to pay?"]),
    "card_virtual": (
        "Premium and Plus customers can create a virtual card for online shopping under "
        "Cards > New virtual card. It works immediately and can be deleted at any time.",
        ["Can I get a virtual card for online purchases?",
         "How do I create a disposable card number?",
         "Do you offer virtual cards?",
         "I want a separate card just for internet shopping.",
         "How can I add a digital card without waiting for the post?"]),
    "card_apple_google_pay": (
        "Add your card to Apple Pay or Google Pay from the card screen in the app with "
        "'Add to wallet', or from your phone's wallet app using the card details.",
        ["How do I add my card to Apple Pay?",
         "Does my card work with Google Pay?",
         "Can I pay with my phone?",
         "How to set up mobile payments with my debit card?",
         "I want to use my watch to pay in shops."]),
    # --- transfers -------------------------------------------------------------------
    "transfer_sepa_time": (
        "SEPA Instant transfers arrive within 10 seconds. Standard SEPA transfers sent before "
        "3 pm on a business day arrive the same day, otherwise the next business day.",
        ["How long does a bank transfer take?",
         "When will my transfer arrive?",
         "Why hasn't the money I sent reached the other account yet?",
         "How fast are SEPA payments?",
         "I sent money this morning, when will my friend get it?"]),
    "transfer_international": (
        "Transfers outside the SEPA area are sent through SWIFT, cost 0.5% (minimum 5 euros) "
        "and usually arrive in 1 to 4 business days. You need the recipient's IBAN or account "
        "number and the bank's BIC.",
        ["How do I send money abroad?",
         "Can I transfer money to an account in the United States?",
         "What do I need for an international wire?",
         "How much does a SWIFT transfer cost?",
         "I need to pay someone in another country outside Europe."]),
    "transfer_limit": (
        "The default limit is 5,000 euros per day for transfers. You can raise it to 25,000 "
        "euros under Payments > Limits after confirming with your passcode.",
        ["What is the maximum I can transfer in a day?",
         "How do I increase my transfer limit?",
         "My payment is above the daily limit, what can I do?",
         "Is there a cap on how much money I can send?",
         "I need to send a large amount, can I raise the limit?"]),
    "transfer_cancel": (
        "Scheduled and standard transfers can be cancelled in Payments > Scheduled until 3 pm "
        "on the day they are due. Instant transfers cannot be cancelled once sent.",
        ["Can I cancel a transfer I just made?",
         "How do I stop a payment I scheduled?",
         "I want to undo a bank transfer.",
         "Is it possible to recall money I sent?",
         "Please cancel my pending payment."]),
    "transfer_wrong_recipient": (
        "If you sent money to the wrong account, report it under the transfer with 'I made a "
        "mistake'. We ask the receiving bank to return the funds; this can take up to 10 "
        "business days and is not guaranteed.",
        ["I sent money to the wrong person.",
         "I typed the wrong IBAN, how do I get my money back?",
         "The payment went to an incorrect account by mistake.",
         "What happens if I transfer to the wrong recipient?",
         "Can you recover a payment I sent to a stranger by accident?"]),
    "transfer_standing_order": (
        "Create a standing order under Payments > New > Repeat payment. Choose the amount, "
        "the first date and how often it repeats: weekly, monthly or yearly.",
        ["How do I set up a standing order?",
         "Can I make a recurring monthly payment for my rent?",
         "How to schedule an automatic transfer every month?",
         "I want to pay my landlord automatically.",
         "How do I create a repeat payment?"]),
    "transfer_direct_debit": (
        "Direct debits are listed under Payments > Direct debits. You can cancel one there; "
        "cancel it with the company too, so that they do not send a new request.",
        ["How do I cancel a direct debit?",
         "A company keeps taking money from my account, how do I stop it?",
         "Where can I see my direct debits?",
         "I want to stop a subscription that debits my account.",
         "How to block a SEPA mandate?"]),
    # --- account access --------------------------------------------------------------
    "access_reset_password": (
        "Tap 'Forgot passcode' on the login screen and confirm your identity with your phone "
        "number and a selfie. You can then choose a new passcode.",
        ["I forgot my password.",
         "How do I reset my login passcode?",
         "I can't remember my online banking password.",
         "How to change my app password if I've lost it?",
         "My passcode is not accepted anymore, how do I set a new one?"]),
    "access_locked_account": (
        "After five wrong passcode attempts the app locks for 24 hours to protect you. To "
        "unlock it sooner, call us and pass the security check.",
        ["My account is locked.",
         "The app says I'm blocked after too many attempts.",
         "Why can't I log in, it says access suspended?",
         "How do I unlock my online banking?",
         "I entered the wrong code several times and now I'm locked out."]),
    "access_new_phone": (
        "To move the app to a new phone, install it, log in with your email and passcode and "
        "confirm with a selfie. The old phone is signed out automatically.",
        ["I got a new phone, how do I move my banking app?",
         "How to log in on another device?",
         "I changed my mobile, the app asks me to verify.",
         "Can I use the app on two phones?",
         "How do I transfer my account to my new smartphone?"]),
    "access_two_factor": (
        "Online banking sign-ins and payments are confirmed in the app (two-factor "
        "authentication). If you get an approval request you did not start, decline it and "
        "call us.",
        ["What is two-factor authentication?",
         "Why do I have to approve my login in the app?",
         "I got a notification to confirm a login that wasn't me.",
         "How does the security confirmation on my phone work?",
         "Can I turn off the extra verification step?"]),
    "access_change_email": (
        "Change your email or phone number under Profile > Personal details. We send a code "
        "to the new address or number to confirm the change.",
        ["How do I update my email address?",
         "I have a new phone number, how do I change it in my profile?",
         "Where can I edit my contact details?",
         "My email changed, can you update it?",
         "How to change the mobile number linked to my account?"]),
    "access_close_account": (
        "To close your account, move the balance out, cancel direct debits, then choose "
        "Profile > Close account. The account is closed within 2 business days.",
        ["How do I close my account?",
         "I want to cancel my bank account.",
         "Can I delete my account and leave the bank?",
         "What are the steps to shut down my account?",
         "I'm moving to another bank, how do I terminate this account?"]),
    # --- delivery --------------------------------------------------------------------
    "delivery_card_status": (
        "Cards are posted within 2 business days of ordering and arrive in 3 to 5 business "
        "days. Track delivery under Cards > Track my card.",
        ["When will my card arrive?",
         "My new card hasn't been delivered yet.",
         "How long does it take to receive a debit card?",
         "Can I track the delivery of my card?",
         "It's been a week and I still have no card in the mail."]),
    "delivery_card_address": (
        "Cards are sent to the address in your profile. Update it under Profile > Address "
        "before ordering; a card already posted cannot be redirected.",
        ["Can you send my card to a different address?",
         "I moved, where will my card be delivered?",
         "How do I change the delivery address for my card?",
         "My card was sent to my old address.",
         "Can I have the card posted to my office instead of home?"]),
    "delivery_express": (
        "Express delivery by courier costs 15 euros and arrives within 1 business day in most "
        "countries. Choose 'Express' when ordering the card.",
        ["Can I get my card delivered faster?",
         "Do you offer express shipping for cards?",
         "I need the card urgently, is there next-day delivery?",
         "How much is courier delivery?",
         "Is it possible to speed up the card shipping?"]),
    "delivery_damaged_card": (
        "If your card arrives damaged or stops working, order a free replacement under Cards "
        "> Replace card and choose 'Damaged'. Your card number stays the same.",
        ["My card is broken.",
         "The chip on my card doesn't work anymore.",
         "My card arrived bent, can I get a new one?",
         "The card is cracked and the machine can't read it.",
         "How do I replace a damaged card?"]),
    "delivery_cheque_book": (
        "Cheque books can be ordered under Account > Order cheque book and arrive by post "
        "within 7 business days. The first book each year is free.",
        ["How do I order a cheque book?",
         "Can I get checks for my account?",
         "I need new cheques, how long will they take?",
         "Do you still send cheque books?",
         "Where can I request a chequebook?"]),
    "delivery_documents_post": (
        "We send documents by email by default. To receive letters and statements by post, "
        "turn on 'Paper documents' under Profile > Preferences; each letter costs 1 euro.",
        ["Can I receive my statements by post?",
         "I want paper letters instead of emails.",
         "How do I get documents mailed to my home?",
         "Do you send printed statements?",
         "How can I stop receiving paperless documents?"]),
}

GREETINGS = ["", "", "Hi, ", "Hello, ", "Hey there. ", "Good morning, ", "Quick question: "]
CLOSINGS = ["", "", " Thanks!", " Thank you.", " Please help.", " Any idea?"]


def variants(question: str, rng: random.Random, n: int) -> list[str]:
    """The question as written plus n-1 seeded surface variants."""
    out = [question]
    while len(out) < n:
        q = question
        style = rng.random()
        if style < 0.3:
            q = q.lower()
        elif style < 0.5:
            q = q.rstrip("?.!")
        q = rng.choice(GREETINGS) + (q[0].lower() + q[1:] if rng.random() < 0.5 else q)
        q = (q + rng.choice(CLOSINGS)).strip()
        if q not in out:
            out.append(q)
    return out


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)


def main() -> None:
    rng = random.Random(7)
    out = Path(__file__).parent
    write_csv(out / "qa_answers.csv", ["answer_id", "answer"],
              [[aid, text] for aid, (text, _) in FAQ.items()])
    splits = {"train": [], "validation": [], "test": []}
    for aid, (_, questions) in FAQ.items():
        assert len(questions) == 5, aid
        for i, question in enumerate(questions):
            split = "train" if i < 3 else ("validation" if i == 3 else "test")
            for q in variants(question, rng, 4 if split == "train" else 2):
                splits[split].append([q, aid])
    for split, rows in splits.items():
        rng.shuffle(rows)
        write_csv(out / f"qa_{split}.csv", ["question", "answer_id"], rows)
        print(f"qa_{split}.csv: {len(rows)} questions")
    print(f"qa_answers.csv: {len(FAQ)} answers")


if __name__ == "__main__":
    main()
