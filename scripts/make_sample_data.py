#!/usr/bin/env python3
"""Generate the small offline sample datasets shipped with prompt-vs-finetune.

Writes (relative to the repository root):

* ``src/prompt_vs_finetune/resources/datasets/intent_sample/{train,test}.jsonl``
  -- customer-support intent classification, rows ``{"text", "label"}``.
* ``src/prompt_vs_finetune/resources/datasets/summary_sample/{train,validation,test}.jsonl``
  -- short-passage summarisation, rows ``{"text", "summary"}``.

Everything is synthetic: the intent data is built from hand-written base
messages per intent plus light templated variation (openers, closers, casual
lower-casing, the odd typo); the summary data is slot-filled from passage /
summary template pairs. All randomness comes from ``random.Random(0)``-seeded
generators, so running

    python scripts/make_sample_data.py

reproduces the committed files byte for byte. Standard library only.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "src" / "prompt_vs_finetune" / "resources" / "datasets"

# ---------------------------------------------------------------------------
# intent_sample
# ---------------------------------------------------------------------------

INTENT_TRAIN_PER_LABEL = 55
INTENT_TEST_PER_LABEL = 15
# Base messages reserved for the test split (per intent). Test rows are built
# only from these, train rows only from the rest, so the test split contains
# no paraphrase of a training message, not just no exact duplicate.
INTENT_TEST_BASES = 10

INTENTS: dict[str, list[str]] = {
    "billing": [
        "I was charged twice this month for the same order.",
        "Why is my bill higher than usual this month?",
        "My card was declined when I tried to pay.",
        "Can you send me a copy of my invoice for March?",
        "There's a charge on my statement I don't recognize.",
        "How do I update the payment method on my account?",
        "The invoice has the wrong company name on it.",
        "I need a receipt for my last payment for my expense report.",
        "my credit card keeps getting declined at checkout",
        "Where can I see my billing history?",
        "You charged me even though I'm still in the free trial.",
        "The payment failed but money still left my bank account.",
        "Can I pay my bill with PayPal instead of a card?",
        "Why was I charged a late fee?",
        "My invoice shows tax I shouldn't be paying as a business.",
        "I want to change the billing address on my invoices.",
        "The amount charged doesn't match the price on the website.",
        "When is my next payment due?",
        "Is it possible to get monthly invoices sent to my accountant?",
        "I see two pending charges from you on my card.",
        "My automatic payment didn't go through this month.",
        "Can I split the payment across two cards?",
        "What is this $4.99 charge on my bank statement?",
        "The bill says I owe money but I already paid.",
        "How do I add a VAT number to my invoice?",
        "Payment keeps failing with my debit card.",
        "I was overcharged on my last bill.",
        "Can you explain the fees on my latest bill?",
        "Do you accept bank transfer for invoice payments?",
        "I need an itemized invoice for my company.",
        "My card expired, how do I update my billing info?",
        "The charge went through in euros instead of dollars.",
        "Why did you charge my old card instead of the new one?",
        "I never received the invoice email for this month.",
        "My billing date moved and now I'm charged mid-month, why?",
        "Can I get my invoices in PDF format?",
        "my payment is stuck on processing for 3 days",
        "got a charge from you i don't remember authorizing",
        "The invoice total is wrong, please correct it.",
        "My bank flagged your charge as suspicious.",
        "Can I set up automatic payments for my bill?",
        "Payment declined even though there's enough money on the card.",
        "Why does my bill include a service fee?",
        "Please resend the invoice for order 55812.",
        "I was charged tax twice on the same invoice.",
        "Why was my card charged before the billing date?",
        "I need a copy of last year's invoices for taxes.",
        "The payment page rejected my card.",
        "My bill shows a charge for something I didn't buy.",
        "Can you update the card you charge each month?",
        "Why is there an extra charge on my invoice?",
        "I paid the invoice but it still shows as unpaid.",
        "How do I download my billing statement?",
        "The card payment went through twice.",
        "Who do I talk to about a wrong charge on my bill?",
    ],
    "technical_problem": [
        "The app crashes every time I open it.",
        "I'm getting an error 500 when I try to save.",
        "The website is not loading on my laptop.",
        "Your app keeps freezing on the home screen.",
        "There's a bug where my settings don't save.",
        "The page just shows a blank white screen.",
        "Notifications stopped working after the last update.",
        "The app crashes when I upload a photo.",
        "I keep getting 'something went wrong' error messages.",
        "Sync isn't working between my phone and computer.",
        "The search function is broken and returns no results.",
        "video won't play, just keeps buffering",
        "The app drains my battery since the update.",
        "Export to CSV fails with an error.",
        "The dashboard won't load in Chrome.",
        "The submit button on the form does nothing, is it a bug?",
        "The app is super slow and laggy lately.",
        "I get a timeout error whenever I open reports.",
        "Images are broken on the product pages.",
        "The desktop app won't install on Windows 11.",
        "The update failed and now the app won't start.",
        "A dark mode glitch makes the text unreadable.",
        "My files aren't syncing to the cloud.",
        "The calendar page throws a JavaScript error.",
        "Audio cuts out during calls in the app.",
        "The Android app force closes on startup.",
        "Got error code E-1042 when connecting the device.",
        "The API is returning 503 errors since this morning.",
        "The printer integration stopped working.",
        "Scrolling is broken on the iPad version.",
        "Attachments fail to upload, it just spins forever.",
        "The app crashes when I rotate my phone.",
        "Data in my dashboard isn't loading or updating.",
        "I think there's a bug in the latest version, the menu disappeared.",
        "The browser extension isn't working anymore.",
        "The page keeps reloading in an endless loop.",
        "the app froze and I lost all my work",
        "Bluetooth connection to the device keeps dropping.",
        "The chat feature is broken, messages don't send.",
        "Charts show wrong numbers after the update, is this a bug?",
        "The site is down for me, is there an outage?",
        "Getting a certificate error when I visit your site.",
        "Widgets won't load on the home screen.",
        "The app is stuck on the loading screen.",
        "The error message says database connection failed.",
        "The app keeps crashing after the latest update.",
        "I get an error when I try to open my profile page.",
        "The website is really slow and won't load images.",
        "Something is broken, the app shows an error on every screen.",
        "Found a bug: the save button doesn't work.",
        "The app won't open on my tablet anymore.",
        "Pages are loading forever and then time out.",
        "The video call feature crashes my browser.",
        "Getting a network error even though my wifi works.",
        "The map in the app is not loading at all.",
    ],
    "cancel_subscription": [
        "I want to cancel my subscription.",
        "How do I stop my monthly subscription?",
        "Please close my membership effective today.",
        "Cancel my account and turn off auto-renewal.",
        "I'd like to end my subscription at the end of this month.",
        "How can I cancel before the next renewal?",
        "Please don't renew my membership.",
        "I no longer need the service, please cancel it.",
        "where is the cancel button?? can't find it",
        "Turn off auto-renew on my subscription please.",
        "I want to terminate my contract.",
        "Can I cancel my membership online or do I need to call?",
        "Stop my subscription, I'm moving abroad.",
        "Please cancel the gym membership for my son.",
        "I signed up by mistake, cancel it please.",
        "How do I unsubscribe from the paid service?",
        "Cancel my free trial before it converts to a subscription.",
        "Is there a fee to cancel early?",
        "I'd like to close my account permanently and end my membership.",
        "I want to quit the subscription, it's too expensive.",
        "Please end my magazine subscription.",
        "Does cancelling take effect immediately?",
        "I've been trying to cancel for a week, please help.",
        "Stop the subscription for my second account.",
        "cancel cancel cancel. I don't want this anymore",
        "Can you confirm my subscription has been cancelled?",
        "I want to pause or cancel my membership.",
        "How do I end my subscription on iPhone?",
        "Please deactivate my subscription and membership.",
        "I'm done with the service, cancel everything.",
        "Will I lose my data if I cancel my subscription?",
        "I want to cancel the family subscription.",
        "Terminate my membership please, I'm not using it.",
        "What's the notice period to cancel my contract?",
        "Cancel my subscription effective immediately.",
        "I don't want the subscription to renew next year.",
        "Please stop my meal kit subscription.",
        "Can someone just cancel my membership for me?",
        "I'd like to opt out of the yearly subscription.",
        "Close my membership, I'm switching to another company.",
        "Stop renewing my subscription and cancel it.",
        "Please cancel the subscription I started yesterday.",
        "How do I end my membership without a penalty?",
        "I want out of my contract, how do I cancel?",
        "Discontinue my subscription starting next month.",
        "How do I cancel my membership?",
        "I want to cancel and close my account.",
        "Please cancel my subscription before it renews.",
        "Can I cancel my subscription at any time?",
        "Stop my membership, I don't use it anymore.",
        "I need to cancel the subscription for my mom.",
        "Cancel the auto-renewal and end my membership.",
        "How do I stop the subscription from renewing?",
        "I'd like to cancel, the service isn't for me.",
        "Please end my contract and cancel the subscription.",
    ],
    "refund": [
        "I want a refund for my last order.",
        "How do I get my money back?",
        "Can I return this item for a full refund?",
        "The product is broken, I want a refund.",
        "When will my refund be processed?",
        "I returned the jacket two weeks ago and still no refund.",
        "Please refund the duplicate purchase.",
        "What's your return policy?",
        "I'd like my money back, this isn't what I ordered.",
        "Refund status for order 88213?",
        "can i return shoes that i wore once",
        "The refund hasn't shown up on my card yet.",
        "How long do refunds take?",
        "I want to return the headphones, they don't fit well.",
        "Do I get a refund if I return it after 30 days?",
        "Can I get a partial refund for the missing parts?",
        "Please issue a refund, the service was terrible.",
        "How do I print a return label?",
        "I want my money back for the concert tickets.",
        "You promised a refund last week, where is it?",
        "Is the return free or do I pay for it?",
        "Can I get a refund instead of store credit?",
        "The item doesn't work, I'd like to return it and get my money back.",
        "Refund me for the unused months please.",
        "I was told I'd get a refund within 5 days.",
        "Return request for the blue sweater, wrong size.",
        "Can the refund go to a different card?",
        "My refund was denied, why?",
        "I'd like to return an unopened gift.",
        "Please process my return, I dropped it off yesterday.",
        "How much of my money will I get back?",
        "Requesting a refund for the defective charger.",
        "Want my money back, the course was nothing like described.",
        "Does the refund include the original fees?",
        "Can I exchange or return the lamp?",
        "Where do I send the return?",
        "refund pls, the food was cold",
        "I still haven't received my money back for the returned laptop.",
        "Money back guarantee, how do I claim it?",
        "Is it too late to ask for a refund?",
        "I need a refund for a hotel booking I couldn't use.",
        "The refund amount is less than what I paid.",
        "What's the return window for electronics?",
        "Please refund the faulty blender.",
        "I want to return my order and get a refund.",
        "Can I still get a refund for this order?",
        "I returned the item, when do I get my money back?",
        "What's your refund policy for sale items?",
        "I want to send this back and get a refund.",
        "The refund was supposed to be on my card by now.",
        "How do I return something I bought online?",
        "Please give me my money back for the broken toy.",
        "Can I return this after opening it?",
        "Is my refund approved yet?",
        "I'd like a refund, the item is not as described.",
    ],
    "account_access": [
        "I forgot my password.",
        "I can't log in to my account.",
        "I'm locked out after too many login attempts.",
        "The password reset email never arrives.",
        "My 2FA code isn't working.",
        "I lost my phone and can't get the two-factor code.",
        "How do I reset my password?",
        "It says my username doesn't exist.",
        "someone changed my password, i think i was hacked",
        "Can't sign in with Google anymore.",
        "My account got locked, please unlock it.",
        "The verification code expired before I could use it.",
        "I don't remember which email I used to sign up.",
        "The login page says invalid credentials but my password is correct.",
        "How do I change the email address I log in with?",
        "The reset password link says it's expired.",
        "I need to recover my account, I lost access to my email.",
        "Two-factor authentication keeps rejecting my code.",
        "I got a suspicious login alert, what should I do?",
        "Can't access my account after changing phones.",
        "My security questions aren't accepted when I log in.",
        "locked out of my account again",
        "How can I turn off 2FA?",
        "I keep getting logged out right after I sign in.",
        "Can you help me get back into my account?",
        "The authenticator app codes don't work for login.",
        "My account was disabled, how do I get access back?",
        "I can't log in on the mobile app, only on desktop.",
        "Forgot my username and password, help.",
        "Someone else is logged into my account.",
        "It won't accept my new password, the requirements are confusing.",
        "The SMS login code never comes through.",
        "I need to update my login email, the old one is gone.",
        "Who do I contact to unlock my account?",
        "My password stopped working overnight.",
        "I'm stuck in a login loop.",
        "How do I enable two-factor authentication?",
        "My employee account access was removed by mistake.",
        "Can I log in with my phone number instead of email?",
        "Lost my backup codes for 2FA.",
        "It says my account is suspended and I can't sign in.",
        "I want to change my password, how?",
        "The magic link login isn't working for me.",
        "Access denied when I try to sign in to my account.",
        "Help, I can't get into my account.",
        "I can't sign in, it says my password is wrong.",
        "How do I reset my 2FA?",
        "Locked out of my account, please help me log in.",
        "The login code never arrives on my phone.",
        "I changed my phone and lost my 2FA app.",
        "My account is locked after I typed the wrong password.",
        "I can't remember my password or my security answers.",
        "Why can't I log in to my account today?",
        "I need help recovering my login details.",
        "The password reset page isn't sending me a code.",
    ],
    "shipping": [
        "Where is my package?",
        "My order hasn't arrived yet.",
        "Can I get a tracking number for my order?",
        "The tracking says delivered but I don't have it.",
        "How long does shipping take to Canada?",
        "My delivery is late by a week.",
        "Do you ship internationally?",
        "Can I change the delivery address for my order?",
        "package stuck in transit for 10 days",
        "The courier left my parcel at the wrong house.",
        "When will my order arrive?",
        "Is express delivery available?",
        "The tracking link doesn't show any updates.",
        "My package was damaged in transit.",
        "Can I pick up my order instead of having it delivered?",
        "What are your shipping costs?",
        "The delivery driver never showed up.",
        "Has my order shipped yet?",
        "I need the package by Friday, can you expedite shipping?",
        "Only half my order was delivered.",
        "Do you deliver on weekends?",
        "Which carrier do you use for shipping?",
        "My parcel is stuck at customs.",
        "Can you hold my package at the post office?",
        "The estimated delivery date keeps changing.",
        "I wasn't home for the delivery, what now?",
        "The tracking number says invalid.",
        "Is free shipping available over a certain amount?",
        "Can I schedule a delivery time?",
        "my package went to my old address",
        "How do I track my shipment?",
        "The delivery was marked failed but nobody came.",
        "Do you ship to PO boxes?",
        "The box arrived opened and some items are missing.",
        "My order shipped 2 weeks ago and still nothing.",
        "Can I add delivery instructions for the courier?",
        "Why is shipping so expensive to Hawaii?",
        "When does my shipment leave the warehouse?",
        "The package says out for delivery since yesterday.",
        "Can the parcel be left with a neighbour?",
        "Is my delivery going to arrive before Christmas?",
        "Lost package, the tracking stopped updating.",
        "How long does standard shipping usually take?",
        "Can you ship my order to my office instead?",
        "The wrong package was delivered to me.",
        "When will my package be delivered?",
        "How much does shipping cost for a small order?",
        "My tracking number isn't working.",
        "The delivery is two days late, where is it?",
        "Can I get faster shipping on my order?",
        "Which courier is delivering my parcel?",
        "My package says delivered but it's not at my door.",
        "Do you offer next day delivery?",
        "I haven't received my order, can you check the tracking?",
        "Is shipping free if I order two items?",
    ],
    "change_plan": [
        "I want to upgrade to the premium plan.",
        "How do I downgrade my plan?",
        "Can I switch from the monthly plan to the annual plan?",
        "What's the difference between the basic tier and the pro tier?",
        "I'd like to move to a cheaper plan.",
        "Upgrade me to the business tier please.",
        "Can I switch plans mid-cycle?",
        "I need more storage, which plan should I upgrade to?",
        "downgrade me to the free tier",
        "How do I add more users to my plan?",
        "Switch my plan to the family plan.",
        "Is there a student plan I can change to?",
        "I want to go from premium back to standard.",
        "Can I try the enterprise tier for a month?",
        "Will I lose features if I downgrade?",
        "Upgrade my plan to unlimited data.",
        "How much is it to move up to the premium tier?",
        "Change my plan to the one with HD streaming.",
        "Can I switch to a plan with fewer seats?",
        "Please change my tier to Plus.",
        "I'd like to upgrade to the team plan next week.",
        "What plans are available for small teams?",
        "Is upgrading my plan prorated?",
        "switch me to the basic plan, I don't use the extras",
        "Can I downgrade without losing my data?",
        "I want the premium tier with offline downloads.",
        "How do I change my plan in the app?",
        "Move me to the yearly plan please.",
        "Can I upgrade just for this month?",
        "My usage went down, I want a smaller plan.",
        "Can you compare the pro plan and the premium plan for me?",
        "I'd like to switch to the ad-free tier.",
        "Upgrade me from the starter plan to the growth plan.",
        "Can I change plans anytime?",
        "Is there a plan with more minutes?",
        "Please downgrade my plan starting next cycle.",
        "What happens to my files if I switch plans?",
        "I want to add the sports package to my plan.",
        "Upgrade me to the 1TB storage tier.",
        "Is there a cheaper tier for nonprofits?",
        "Change me from the pro plan to the standard plan.",
        "How do I upgrade my plan from the website?",
        "Can my plan be changed to pay-as-you-go?",
        "I outgrew the basic tier, time to upgrade.",
        "Which tier includes priority support?",
        "How do I upgrade my plan?",
        "I want to switch to a different plan.",
        "Can I downgrade to the basic tier next month?",
        "Which plan is best if I need more users?",
        "Please upgrade me to premium.",
        "I'd like to change my plan to the cheaper one.",
        "What does the premium tier include compared to basic?",
        "Switch me from the pro tier to the premium tier.",
        "Can I upgrade my plan today and pay the difference?",
        "I want to downgrade, the premium plan is too much for me.",
    ],
    "general_question": [
        "What are your opening hours?",
        "Do you offer gift cards?",
        "Where are you located?",
        "How does the loyalty program work?",
        "Are you open on public holidays?",
        "Do you have a physical store in Chicago?",
        "Is there a phone number I can call?",
        "Do you offer student discounts?",
        "what languages does your support team speak",
        "How does the referral program work?",
        "Are your products vegan?",
        "Do you have an affiliate program?",
        "What time does customer service close?",
        "Is your company hiring right now?",
        "Do you offer gift wrapping?",
        "How does the points system work?",
        "Are your products made in the USA?",
        "Can I visit your office?",
        "Do you have a printed catalog?",
        "What's the email address for press inquiries?",
        "Do you offer services in Spanish?",
        "Is your packaging recyclable?",
        "How do I contact your sales team?",
        "Do you have a newsletter?",
        "Are you open on Sundays?",
        "How does your warranty work?",
        "Do you offer discounts for large companies?",
        "Where is your headquarters?",
        "Do you sponsor local events?",
        "Is there a community forum?",
        "Where can I read your privacy policy?",
        "Do you offer a free demo?",
        "just curious, how long have you been in business?",
        "Do you have any stores in Europe?",
        "How does the rewards card work?",
        "Do you offer installation services?",
        "What are the hours for the help desk?",
        "Are your ingredients organic?",
        "Do you partner with schools?",
        "Where can I find your user guides?",
        "Is there a showroom near Boston?",
        "Do you offer workshops or classes?",
        "Who is the CEO of your company?",
        "Are pets allowed in your stores?",
        "Do you have a loyalty card?",
        "What time do you open on Saturdays?",
        "Where are your stores located?",
        "Do you offer free consultations?",
        "How does the gift card work?",
        "Are you open late on Fridays?",
        "Do you have a store near me?",
        "Is there a customer service phone line?",
        "What are your business hours?",
        "Do you offer any discounts for seniors?",
        "Do you donate to charities?",
    ],
}

OPENERS = [
    "hi,",
    "Hi,",
    "Hello,",
    "hello there,",
    "Hey,",
    "hey",
    "Hi team,",
    "Good morning,",
    "good evening,",
    "Excuse me,",
    "Quick question:",
    "Hello support,",
    "hey there,",
    "um,",
    "Hi there!",
    "Sorry to bother you,",
]
CLOSERS = [
    "thanks!",
    "Thank you.",
    "asap",
    "please help",
    "thx",
    "Cheers.",
    "any help appreciated",
    "Please advise.",
    "Thanks in advance.",
    "ty",
    "this is urgent",
    ":(",
    "Thanks a lot!",
    "let me know",
    "pls",
]


def _lower_first(msg: str) -> str:
    """Lower-case the first letter (but keep the pronoun "I", "I'm", ...)."""
    if msg[:2] in ("I ", "I'"):
        return msg
    return msg[:1].lower() + msg[1:]


def _casual(msg: str) -> str:
    """Lower-case the first letter and drop the final full stop."""
    msg = _lower_first(msg)
    if msg.endswith("."):
        msg = msg[:-1]
    return msg


def _add_opener(msg: str, rng: random.Random) -> str:
    opener = rng.choice(OPENERS)
    return f"{opener} {msg if opener.endswith('!') else _lower_first(msg)}"


def _add_closer(msg: str, rng: random.Random) -> str:
    closer = rng.choice(CLOSERS)
    if msg[-1] in ".?!" or closer == ":(":
        return f"{msg} {closer}"
    return f"{msg}, {closer[:1].lower() + closer[1:]}"


# Word prefixes that carry the intent signal; typos never touch these words,
# so the keyword signal stays intact (typos land on the filler words).
KEYWORD_PREFIXES = (
    "charg",
    "invoice",
    "payment",
    "bill",
    "declin",
    "receipt",
    "statement",
    "overcharg",
    "crash",
    "error",
    "bug",
    "load",
    "freez",
    "glitch",
    "sync",
    "outage",
    "install",
    "broken",
    "working",
    "cancel",
    "unsubscrib",
    "subscription",
    "membership",
    "terminat",
    "renew",
    "contract",
    "refund",
    "return",
    "money",
    "exchange",
    "password",
    "login",
    "locked",
    "unlock",
    "hacked",
    "verification",
    "authent",
    "credentials",
    "username",
    "access",
    "recover",
    "account",
    "package",
    "deliver",
    "tracking",
    "shipp",
    "shipment",
    "parcel",
    "courier",
    "arriv",
    "transit",
    "customs",
    "carrier",
    "warehouse",
    "plan",
    "upgrad",
    "downgrad",
    "tier",
    "switch",
    "premium",
    "storage",
    "hours",
    "located",
    "location",
    "offer",
    "store",
    "program",
    "discount",
    "headquarters",
)


def _typo(msg: str, rng: random.Random) -> str:
    """Swap two adjacent letters inside one longish non-keyword word."""
    words = msg.split(" ")
    candidates = [
        i
        for i, w in enumerate(words)
        if len(w) >= 6 and w.isalpha() and not w.lower().startswith(KEYWORD_PREFIXES)
    ]
    if not candidates:
        return msg
    i = rng.choice(candidates)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return " ".join(words)


def _variant(base: str, rng: random.Random, plain: bool) -> str:
    """One surface variant of a base message (``plain`` -> at most casing/typo)."""
    msg = base
    if not plain:
        r = rng.random()
        if r < 0.35:
            msg = _add_opener(_casual(msg) if rng.random() < 0.5 else msg, rng)
        elif r < 0.65:
            msg = _add_closer(_casual(msg) if rng.random() < 0.3 else msg, rng)
        elif r < 0.9:
            msg = _add_closer(_add_opener(_casual(msg), rng), rng)
        else:
            msg = _casual(msg)
    elif rng.random() < 0.25:
        msg = _casual(msg)
    if rng.random() < 0.1:
        msg = _typo(msg, rng)
    return msg


def _key(msg: str) -> str:
    """Duplicate-detection key: ignores case, punctuation and spacing."""
    return " ".join("".join(c for c in msg.lower() if c.isalnum() or c == " ").split())


def _expand(bases: list[str], n: int, rng: random.Random, seen: set[str]) -> list[str]:
    """Build ``n`` distinct messages: every base once, then extra variants."""
    out: list[str] = []
    for base in bases:  # first pass: each base once, mostly undecorated
        msg = _variant(base, rng, plain=rng.random() < 0.6)
        if _key(msg) not in seen:
            seen.add(_key(msg))
            out.append(msg)
        if len(out) == n:
            return out
    while len(out) < n:  # further passes: decorated variants of random bases
        msg = _variant(rng.choice(bases), rng, plain=False)
        if _key(msg) not in seen:
            seen.add(_key(msg))
            out.append(msg)
    return out


def make_intent_sample(rng: random.Random) -> dict[str, list[dict[str, str]]]:
    train: list[dict[str, str]] = []
    test: list[dict[str, str]] = []
    seen: set[str] = set()
    for label, bases in INTENTS.items():
        assert len(set(bases)) == len(bases) >= 35, label
        shuffled = list(bases)
        rng.shuffle(shuffled)
        test_bases = shuffled[:INTENT_TEST_BASES]
        train_bases = shuffled[INTENT_TEST_BASES:]
        train += [
            {"text": t, "label": label}
            for t in _expand(train_bases, INTENT_TRAIN_PER_LABEL, rng, seen)
        ]
        test += [
            {"text": t, "label": label}
            for t in _expand(test_bases, INTENT_TEST_PER_LABEL, rng, seen)
        ]
    for row in train + test:
        n_words = len(row["text"].split())
        assert 4 <= n_words <= 25, row
    rng.shuffle(train)
    rng.shuffle(test)
    return {"train": train, "test": test}


# ---------------------------------------------------------------------------
# summary_sample
# ---------------------------------------------------------------------------

SUMMARY_SPLITS = {"train": 300, "validation": 40, "test": 60}

NAMES = [
    "Anna",
    "Ben",
    "Carlos",
    "Priya",
    "Tom",
    "Mei",
    "Olivia",
    "Jamal",
    "Sofia",
    "Lucas",
    "Hannah",
    "Omar",
    "Grace",
    "Daniel",
    "Aisha",
    "Marco",
    "Elena",
    "Kenji",
    "Laura",
    "Noah",
    "Fatima",
    "Peter",
    "Chloe",
    "Ivan",
    "Zoe",
    "Samuel",
    "Nadia",
    "Leo",
    "Ruth",
    "Diego",
    "Emma",
    "Yusuf",
    "Clara",
    "Hugo",
    "Maya",
    "Felix",
    "Sara",
    "Raj",
    "Julia",
    "Oscar",
]
SURNAMES = [
    "Silva",
    "Novak",
    "Okafor",
    "Keller",
    "Tanaka",
    "Moreau",
    "Brennan",
    "Costa",
    "Lindqvist",
    "Patel",
    "Rossi",
    "Walsh",
    "Haddad",
    "Kowalski",
    "Jensen",
    "Mendez",
    "Schultz",
    "Adeyemi",
    "Fischer",
    "Murphy",
]
CITIES = [
    "Leeds",
    "Denver",
    "Lyon",
    "Osaka",
    "Porto",
    "Austin",
    "Dublin",
    "Oslo",
    "Perth",
    "Toronto",
    "Madrid",
    "Nairobi",
    "Seattle",
    "Bristol",
    "Vienna",
    "Boston",
    "Glasgow",
    "Hamburg",
    "Melbourne",
    "Lisbon",
    "Chicago",
    "Geneva",
    "Auckland",
    "Phoenix",
    "Cardiff",
    "Turin",
    "Calgary",
    "Bergen",
    "Cork",
    "Utrecht",
]
COMPANIES = [
    "Northwind",
    "Brightline",
    "Vela Motors",
    "Kestrel Bank",
    "Orbit Telecom",
    "Lumen Labs",
    "Greenleaf Grocers",
    "Harbor Air",
    "Pinecrest Pharma",
    "Atlas Logistics",
    "Nimbus Software",
    "Redwood Furniture",
    "Solace Health",
    "Tidewater Energy",
    "Crescent Books",
    "Summit Outdoor",
    "Bluebird Coffee",
    "Granite Steel",
    "Meridian Hotels",
    "Falcon Electronics",
    "Juniper Toys",
    "Cobalt Games",
    "Silverline Rail",
    "Maple Dairy",
    "Quartz Mobile",
    "Horizon Cinemas",
    "Evergreen Pharmacy",
    "Copperfield Bikes",
    "Willow Apparel",
    "Beacon Foods",
]
BRANDS = [
    "Zenko",
    "Aurora",
    "Pixelia",
    "Homely",
    "Brisk",
    "Novu",
    "Kettleby",
    "Lumio",
    "Stratus",
    "Vireo",
    "Trekka",
    "Corvo",
    "Halden",
    "Ostra",
]
PRODUCTS = [
    "laptop",
    "coffee maker",
    "blender",
    "office chair",
    "smartwatch",
    "vacuum cleaner",
    "desk lamp",
    "air fryer",
    "backpack",
    "printer",
    "tablet",
    "rice cooker",
    "electric kettle",
    "standing desk",
    "headphones",
    "speaker",
    "robot vacuum",
    "mattress",
    "camera",
    "toaster",
    "microwave",
    "bike helmet",
    "monitor",
    "phone",
    "e-reader",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"]


def _pick(rng: random.Random, pool: list[str], exclude: str | None = None) -> str:
    while True:
        value = rng.choice(pool)
        if value != exclude:
            return value


def _t_replacement(rng: random.Random) -> tuple[str, str]:
    s = {
        "product": rng.choice(PRODUCTS),
        "name": rng.choice(NAMES),
        "weekday": rng.choice(WEEKDAYS),
        "city": rng.choice(CITIES),
        "defect": rng.choice(
            [
                "cracked screen",
                "broken handle",
                "missing cable",
                "dented lid",
                "torn cover",
                "bent frame",
                "loose button",
                "scratched surface",
                "missing charger",
                "faulty switch",
            ]
        ),
    }
    text = (
        "Customer: Hi, the {product} I ordered last week arrived with a {defect}. "
        "Agent: I'm sorry about that, {name}. I have sent you a free replacement "
        "{product}, and it will ship on {weekday} from our {city} warehouse."
    )
    summary = "{name} will receive a replacement {product} shipping on {weekday}."
    return text.format(**s), summary.format(**s)


def _t_opening(rng: random.Random) -> tuple[str, str]:
    s = {
        "company": rng.choice(COMPANIES),
        "city": rng.choice(CITIES),
        "weekday": rng.choice(WEEKDAYS),
        "n": rng.randrange(20, 900, 5),
        "venue": rng.choice(
            [
                "store",
                "warehouse",
                "office",
                "factory",
                "distribution centre",
                "research lab",
                "flagship store",
                "call centre",
                "data centre",
                "training centre",
                "service hub",
            ]
        ),
        "area": rng.choice(
            [
                "city centre",
                "harbour",
                "northern",
                "eastern",
                "riverside",
                "old town",
                "business district",
                "western",
                "university",
            ]
        ),
        "mayor": f"{rng.choice(NAMES)} {rng.choice(SURNAMES)}",
    }
    text = (
        "{company} opened a new {venue} in {city} on {weekday}. The site will "
        "employ {n} local staff, the company said. Mayor {mayor} welcomed the "
        "opening as a boost for the {area} area."
    )
    if rng.random() < 0.4:
        text += " Construction of the site took {k} months."
        s["k"] = rng.randint(4, 30)
    summary = "{company} opened a new {venue} in {city}."
    return text.format(**s), summary.format(**s)


def _t_review(rng: random.Random) -> tuple[str, str]:
    features = [
        "build quality",
        "design",
        "price",
        "setup process",
        "size",
        "finish",
        "user manual",
        "warranty",
        "packaging",
        "colour options",
    ]
    feature = rng.choice(features)
    s = {
        "brand": rng.choice(BRANDS),
        "product": rng.choice(PRODUCTS),
        "feature": feature,
        "feature2": _pick(rng, features, feature),
        "k": rng.randint(2, 11),
        "period": rng.choice(["weeks", "months"]),
        "pos": rng.choice(
            ["excellent", "impressive", "solid", "great", "superb", "reliable", "outstanding"]
        ),
        "stars": rng.choice(["three", "four"]),
        "use": rng.choice(
            [
                "home use",
                "students",
                "small offices",
                "travel",
                "beginners",
                "families",
                "daily use",
            ]
        ),
    }
    text = (
        "I have used the {brand} {product} for {k} {period} now. The {feature} "
        "is {pos}, but the {feature2} could be better. I would rate it {stars} "
        "out of five stars and recommend it for {use}."
    )
    summary = "Reviewer rates the {brand} {product} {stars} stars, praising its {pos} {feature}."
    return text.format(**s), summary.format(**s)


def _t_meeting(rng: random.Random) -> tuple[str, str]:
    weekday = rng.choice(WEEKDAYS[:5])
    s = {
        "weekday": weekday,
        "weekday2": _pick(rng, WEEKDAYS[:5], weekday),
        "team": rng.choice(
            [
                "marketing",
                "design",
                "finance",
                "data",
                "sales",
                "mobile",
                "platform",
                "support",
                "legal",
                "research",
            ]
        ),
        "project": rng.choice(
            [
                "Apollo",
                "Harbor",
                "Falcon",
                "Nova",
                "Cedar",
                "Atlas",
                "Beacon",
                "Orion",
                "Maple",
                "Quartz",
                "Sierra",
                "Titan",
            ]
        ),
        "name": rng.choice(NAMES),
        "action": rng.choice(
            [
                "finish the budget draft",
                "update the launch plan",
                "send the client proposal",
                "write the test plan",
                "prepare the demo",
                "review the contract",
                "hire two engineers",
                "publish the user survey",
                "migrate the database",
                "fix the checkout bug",
                "draft the press release",
            ]
        ),
        "deadline": rng.choice(
            ["Friday", "next Monday", "month end", f"{rng.choice(MONTHS)} {rng.randint(1, 28)}"]
        ),
        "other": rng.choice(
            [
                "review the roadmap",
                "collect customer feedback",
                "update their task lists",
                "test the new build",
            ]
        ),
    }
    text = (
        "Meeting notes from {weekday}: the {team} team reviewed the {project} "
        "project. {name} agreed to {action} by {deadline}. Everyone else will "
        "{other}, and the next check-in is on {weekday2}."
    )
    summary = "{name} will {action} for the {project} project by {deadline}."
    return text.format(**s), summary.format(**s)


def _t_weather(rng: random.Random) -> tuple[str, str]:
    s = {
        "weather": rng.choice(["rain", "snow", "fog", "winds", "storms", "flooding"]),
        "disruption": rng.choice(
            [
                "train delays",
                "road closures",
                "flight cancellations",
                "power cuts",
                "school closures",
                "bus cancellations",
                "traffic jams",
                "ferry cancellations",
            ]
        ),
        "city": rng.choice(CITIES),
        "weekday": rng.choice(WEEKDAYS[:5]),
        "area": rng.choice(
            [
                "city centre",
                "northern suburbs",
                "airport area",
                "harbour district",
                "eastern districts",
                "main ring road",
                "old town",
            ]
        ),
        "n": rng.randrange(500, 60000, 100),
        "time": rng.choice(
            ["noon", "6 pm", "the evening", "late afternoon", "midnight", "the next morning"]
        ),
    }
    text = (
        "Heavy {weather} caused {disruption} in {city} on {weekday} morning, "
        "with the {area} hit hardest. "
        "Around {n} commuters were affected, according to local authorities. "
        "Officials said normal service should return by {time}."
    )
    if rng.random() < 0.4:
        text += " Drivers were asked to avoid the {area} until then."
    summary = "Heavy {weather} caused {disruption} in {city} on {weekday}."
    return text.format(**s), summary.format(**s)


def _t_sports(rng: random.Random) -> tuple[str, str]:
    teams = [
        "Lions",
        "Rovers",
        "Hawks",
        "Wolves",
        "Comets",
        "Pirates",
        "Bears",
        "Falcons",
        "Rangers",
        "Tigers",
        "Sharks",
        "Eagles",
    ]
    city = rng.choice(CITIES)
    team = rng.choice(teams)
    s1 = rng.randint(1, 5)
    k = rng.randint(1, min(s1, 3))
    s = {
        "city": city,
        "team": team,
        "city2": _pick(rng, CITIES, city),
        "team2": _pick(rng, teams, team),
        "s1": s1,
        "s2": rng.randint(0, s1 - 1),
        "weekday": rng.choice(WEEKDAYS),
        "player": f"{rng.choice(NAMES)} {rng.choice(SURNAMES)}",
        "times": ["once", "twice", "three times"][k - 1],
        "n": rng.randrange(3000, 45000, 100),
        "pos": rng.choice(ORDINALS),
    }
    text = (
        "The {city} {team} beat the {city2} {team2} {s1}-{s2} on {weekday} "
        "night. {player} scored {times} in front of {n} fans. The win moves "
        "the {team} up to {pos} place in the league table."
    )
    if rng.random() < 0.4:
        text += " The two sides meet again in {month}."
        s["month"] = rng.choice(MONTHS)
    summary = "The {city} {team} beat the {city2} {team2} {s1}-{s2}."
    return text.format(**s), summary.format(**s)


def _t_plan(rng: random.Random) -> tuple[str, str]:
    s = {
        "plan": rng.choice(
            [
                "Basic",
                "Plus",
                "Premium",
                "Family",
                "Business",
                "Student",
                "Pro",
                "Unlimited",
                "Team",
            ]
        ),
        "name": rng.choice(NAMES),
        "weekday": rng.choice(WEEKDAYS),
        "price": rng.randint(5, 60),
        "perk": rng.choice(
            [
                "unlimited storage",
                "priority support",
                "five user seats",
                "offline downloads",
                "HD streaming",
                "free shipping",
                "ad-free listening",
                "unlimited calls",
            ]
        ),
    }
    text = (
        "Customer: Hello, I would like to switch my account to the {plan} plan. "
        "Agent: No problem, {name}. Your {plan} plan starts on {weekday} and "
        "costs {price} dollars per month, including {perk}."
    )
    if rng.random() < 0.4:
        text += " A confirmation email is on its way."
    summary = "{name} switched to the {plan} plan at {price} dollars per month."
    return text.format(**s), summary.format(**s)


def _t_event(rng: random.Random) -> tuple[str, str]:
    s = {
        "city": rng.choice(CITIES),
        "event": rng.choice(
            [
                "Food Festival",
                "Book Fair",
                "Jazz Festival",
                "Marathon",
                "Film Festival",
                "Tech Summit",
                "Craft Market",
                "Wine Fair",
                "Science Fair",
                "Flower Show",
                "Half Marathon",
                "Design Week",
            ]
        ),
        "month": rng.choice(MONTHS),
        "day": rng.randint(1, 28),
        "venue": rng.choice(
            [
                "the city park",
                "the convention centre",
                "the old harbour",
                "Central Square",
                "the riverside stadium",
                "the town hall",
                "the exhibition grounds",
                "the botanical garden",
            ]
        ),
        "n": rng.randrange(1000, 80000, 500),
        "weekday": rng.choice(WEEKDAYS),
        "price": rng.randint(5, 90),
    }
    text = (
        "The annual {city} {event} will take place on {month} {day} at {venue}. "
        "Organisers expect more than {n} visitors this year. Tickets go on sale "
        "next {weekday} and cost {price} dollars."
    )
    summary = "The {city} {event} will take place on {month} {day} at {venue}."
    return text.format(**s), summary.format(**s)


def _t_earnings(rng: random.Random) -> tuple[str, str]:
    direction, reason, move = rng.choice(
        [
            ("record", "stronger than expected", "rose"),
            ("higher", "strong", "climbed"),
            ("higher", "better than forecast", "rose"),
            ("lower", "weaker than expected", "fell"),
            ("lower", "hit by higher prices", "dropped"),
            ("weaker", "soft", "slipped"),
        ]
    )
    s = {
        "company": rng.choice(COMPANIES),
        "direction": direction,
        "reason": reason,
        "move": move,
        "weekday": rng.choice(WEEKDAYS[:5]),
        "amount": rng.randint(12, 950),
        "pct": rng.randint(1, 12),
        "line": rng.choice(
            [
                "new products",
                "online services",
                "store brands",
                "premium range",
                "business customers",
                "subscription plans",
                "export markets",
            ]
        ),
    }
    text = (
        "{company} reported {direction} quarterly sales of {amount} million "
        "dollars on {weekday}. The company said demand from its {line} was "
        "{reason} during the quarter. Its shares {move} {pct} percent in early trading."
    )
    summary = "{company} reported {direction} quarterly sales of {amount} million dollars."
    return text.format(**s), summary.format(**s)


def _t_recall(rng: random.Random) -> tuple[str, str]:
    s = {
        "company": rng.choice(BRANDS),
        "n": rng.randrange(500, 250000, 500),
        "product": rng.choice(PRODUCTS),
        "part": rng.choice(
            [
                "battery",
                "power cable",
                "switch",
                "heating element",
                "charger",
                "hinge",
                "cooling fan",
                "sensor",
                "plug",
            ]
        ),
        "weekday": rng.choice(WEEKDAYS[:5]),
    }
    text = (
        "{company} is recalling {n} {product} units because of a faulty {part}, "
        "the firm announced on {weekday}. Customers are advised to stop using "
        "the device and contact support for a free repair. No injuries have "
        "been reported so far."
    )
    summary = "{company} is recalling {n} {product} units because of a faulty {part}."
    return text.format(**s), summary.format(**s)


def _t_research(rng: random.Random) -> tuple[str, str]:
    tech, benefit = rng.choice(
        [
            ("battery", "charge in five minutes"),
            ("blood test", "detect cancer early"),
            ("water filter", "remove microplastics"),
            ("app", "predict local floods"),
            ("coating", "keep fruit fresh longer"),
            ("robot", "sort recycling waste"),
            ("glove", "translate sign language"),
            ("sensor", "detect gas leaks"),
            ("concrete mix", "absorb carbon dioxide"),
            ("drone", "plant trees quickly"),
            ("solar panel", "work on cloudy days"),
            ("hearing aid", "filter background noise"),
        ]
    )
    s = {
        "city": rng.choice(CITIES),
        "tech": tech,
        "benefit": benefit,
        "k": rng.randint(2, 18),
        "n": rng.randrange(20, 600, 10),
        "month": rng.choice(MONTHS),
        "lead": rng.choice(SURNAMES),
    }
    text = (
        "Researchers at the University of {city} have developed a new {tech} "
        "that can {benefit}. The team, led by Professor {lead}, tested it for "
        "{k} months with {n} volunteers. They hope to publish the full results "
        "in {month}."
    )
    summary = "{city} researchers developed a new {tech} that can {benefit}."
    return text.format(**s), summary.format(**s)


def _t_delay(rng: random.Random) -> tuple[str, str]:
    s = {
        "product": rng.choice(PRODUCTS),
        "weekday": rng.choice(WEEKDAYS),
        "name": rng.choice(NAMES),
        "city": rng.choice(CITIES),
        "k": rng.randint(2, 7),
        "reason": rng.choice(
            ["a storm", "staff shortages", "a sorting error", "high demand", "a vehicle breakdown"]
        ),
    }
    text = (
        "Customer: My {product} was supposed to arrive on {weekday}, but it "
        "still has not come. Agent: I checked your order, {name}, and the "
        "package is delayed at the {city} depot because of {reason}. It should "
        "reach you within {k} days."
    )
    summary = "{name}'s {product} is delayed at the {city} depot."
    return text.format(**s), summary.format(**s)


SUMMARY_TEMPLATES = [
    _t_replacement,
    _t_opening,
    _t_review,
    _t_meeting,
    _t_weather,
    _t_sports,
    _t_plan,
    _t_event,
    _t_earnings,
    _t_recall,
    _t_research,
    _t_delay,
]


def _n_sentences(text: str) -> int:
    # "Customer:" / "Agent:" speaker tags are not sentence boundaries.
    return sum(text.count(p) for p in (". ", "? ", "! ")) + 1


def make_summary_sample(rng: random.Random) -> dict[str, list[dict[str, str]]]:
    total = sum(SUMMARY_SPLITS.values())
    rows: list[dict[str, str]] = []
    seen_text: set[str] = set()
    seen_summary: set[str] = set()
    i = 0
    while len(rows) < total:
        template = SUMMARY_TEMPLATES[i % len(SUMMARY_TEMPLATES)]
        text, summary = template(rng)
        if text in seen_text or summary in seen_summary:
            continue  # resample the same template
        assert 30 <= len(text.split()) <= 70, text
        assert 2 <= _n_sentences(text) <= 4, text
        assert 6 <= len(summary.split()) <= 15, summary
        seen_text.add(text)
        seen_summary.add(summary)
        rows.append({"text": text, "summary": summary})
        i += 1
    # ``rows`` cycles through the templates, so contiguous slices keep the
    # template mix balanced across splits; shuffle within each split.
    out: dict[str, list[dict[str, str]]] = {}
    start = 0
    for split, n in SUMMARY_SPLITS.items():
        out[split] = rows[start : start + n]
        rng.shuffle(out[split])
        start += n
    return out


# ---------------------------------------------------------------------------


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    intent = make_intent_sample(random.Random(0))
    for split, rows in intent.items():
        _write_jsonl(DATASETS / "intent_sample" / f"{split}.jsonl", rows)
    summary = make_summary_sample(random.Random(0))
    for split, rows in summary.items():
        _write_jsonl(DATASETS / "summary_sample" / f"{split}.jsonl", rows)
    for name, splits in (("intent_sample", intent), ("summary_sample", summary)):
        counts = ", ".join(f"{s}={len(r)}" for s, r in splits.items())
        print(f"wrote {name}: {counts}")


if __name__ == "__main__":
    main()
