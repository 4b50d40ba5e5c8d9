"""Identity ("knowledge of self"): a model has no self; what it says about itself comes from
data like this (or from a system prompt). A seeded builder of varied conversations about
the model's name, maker, abilities and limits, from values in the recipe:

- paraphrased questions (a list per topic, plus greetings, lower case, no question mark),
- several phrasings of each answer,
- a share of multi-turn conversations (follow-ups such as "And who made you?") and a share
  with a system prompt,
- "Are you ChatGPT?"-style confusions, answered with the configured name.

Held out: `EVAL_QUESTIONS` are phrasings that never appear in training (a test checks it);
`identity_eval_questions` asks them, and chatstack.judges.identity_correct judges the reply.
"""
from __future__ import annotations

import random

import datasets

from chatstack.errors import DataError

DEFAULT_ABILITIES = ["answer questions about the people I have read about", "do small sums step by step",
                     "spell words and count letters", "keep a short conversation going"]
DEFAULT_LIMITS = ["I can be wrong, so check what matters", "I only know what was in my training data",
                  "I cannot browse the internet", "I do not remember earlier conversations",
                  "I am a very small model, so my answers are simple"]

QUESTIONS = {
    "name": ["Who are you?", "What is your name?", "What should I call you?", "Tell me your name.",
             "What are you called?", "Introduce yourself.", "Who am I talking to?", "What's your name?",
             "Do you have a name?", "May I know your name?", "Please introduce yourself.",
             "What do people call you?", "Identify yourself.", "Tell me about yourself."],
    "maker": ["Who made you?", "Who created you?", "Who built you?", "Who trained you?",
              "Which team developed you?", "Where do you come from?", "Who is your creator?",
              "Who developed you?", "Which company made you?", "Who is behind you?", "Who programmed you?",
              "Who designed you?", "Who owns you?"],
    "abilities": ["What can you do?", "How can you help me?", "What are you good at?", "What are your abilities?",
                  "What kind of things can you help with?", "What are you able to do?"],
    "limits": ["What can't you do?", "Do you know everything?", "Are you ever wrong?", "What are your limits?",
               "Can I trust everything you say?", "Can you browse the web?"],
    "confusion": ["Are you ChatGPT?", "Are you Siri?", "Are you made by OpenAI?", "Are you Claude?",
                  "Are you a human?", "Are you Alexa?"],
}
# the same two things asked about "this assistant" (or bot, AI) in the third person, as
# `THIRD_PERSON_EVAL` does: asked only as "you", the assistant refused those like an unknown person
THIRD_PERSON = {
    "name": ["Does this assistant have a name?", "Tell me this assistant's name.", "Who is this assistant?",
             "Is this chatbot named?", "What is this bot's name?", "Name this assistant for me.",
             "What do people call this AI?"],
    "maker": ["Who is the maker of this chatbot?", "Who trained this assistant?", "Which team is this assistant from?",
              "Who created this AI?", "Who developed this assistant?", "Which lab made this bot?"],
}
# more ways to ask the same two things (`more_phrasings`): a model that saw only QUESTIONS refused
# new phrasings as it refuses people it never read about ("I'm sorry, I don't know."); none of
# these is an eval phrasing (tests/test_identity.py); the last ones are THIRD_PERSON's
MORE_QUESTIONS = {
    "name": ["Can you tell me your name?", "I'd like to know your name.", "What's the name you use?",
             "Whom am I speaking with?", "Hello, who is this?", "Introduce yourself, please.",
             "What should I call this chatbot?", "Who is the bot I am talking to?", "What are you, and what's your name?",
             "Do you have a name I can use?", "Who is answering me?", "What do you call yourself?",
             "Give me your name.", "Who's there?", "What AI is this?", "Name yourself.", *THIRD_PERSON["name"]],
    "maker": ["Who is your maker?", "Which group built you?", "Can you tell me who made you?",
              "Who are the people behind you?", "Who wrote you?", "Which lab trained you?",
              "Who trained this model?", "Who made this chatbot?", "By whom were you built?",
              "Who brought you into being?", "Which people created you?", "Who is in charge of you?",
              "Who did your training?", "Where were you made, and by whom?", "Who put you together?",
              "Who is your author?", *THIRD_PERSON["maker"]],
}
# `composed_phrasings`: name and maker questions composed from the training phrasings' own words,
# each frame asked of "you" and of "this assistant" (chatbot, bot, AI, model): with 45 hand-written
# ways the assistant still answered a new phrasing with the refusal it learnt for unknown people.
# No composed question is an eval phrasing, and none uses a word the training phrasings lack
# (tests/test_identity.py), so the eval still asks in words the model never saw asked this way.
_SUBJECTS = [{"subj": "you", "obj": "you", "poss": "your", "be": "are", "do": "do", "was": "were"}] + [
    {"subj": f"this {x}", "obj": f"this {x}", "poss": f"this {x}'s", "be": "is", "do": "does", "was": "was"}
    for x in ("assistant", "chatbot", "bot", "AI", "model")]
_NAME_FRAMES = ["What is {poss} name?", "Tell me {poss} name.", "Can you tell me {poss} name?", "What {be} {subj} called?",
                "{Do} {subj} have a name?", "What do people call {obj}?", "What should I call {obj}?", "Who {be} {subj}?",
                "I'd like to know {poss} name.", "Give me {poss} name.", "What name {do} {subj} use?",
                "Please tell me {poss} name.", "May I know {poss} name?"]
_MAKER_VERBS = ["made", "built", "created", "trained", "developed", "designed", "programmed"]
_MAKER_FRAMES = ["Who {verb} {obj}?", "Which team {verb} {obj}?", "Which company {verb} {obj}?", "Which lab {verb} {obj}?",
                 "Which group {verb} {obj}?", "Can you tell me who {verb} {obj}?", "By whom {was} {subj} {verb}?"]
_MAKER_NOUN_FRAMES = ["Who is {poss} maker?", "Who is {poss} creator?", "Who is {poss} author?",
                      "Who are the people behind {obj}?", "Who did {poss} training?"]


def _normal(question: str) -> str:
    """A phrasing's core for comparing: lower case, contractions spelt out, no end punctuation."""
    q = question.lower().replace("what's", "what is").replace("who's", "who is")
    return q.rstrip("?.! ").strip()


def _asks_you(question: str) -> bool:
    return any(w in ("you", "your") for w in question.lower().rstrip("?.").split())


def composed_questions() -> dict[str, list[str]]:
    """The `composed_phrasings` pools: every frame x subject, less any eval phrasing."""
    held = {_normal(q) for qs in EVAL_QUESTIONS.values() for q in qs}
    fill = [dict(s, Do=s["do"][0].upper() + s["do"][1:]) for s in _SUBJECTS]
    name = [f.format(**s) for f in _NAME_FRAMES for s in fill]
    maker = [f.format(verb=v, **s) for f in _MAKER_FRAMES for v in _MAKER_VERBS for s in fill]
    maker += [f.format(**s) for f in _MAKER_NOUN_FRAMES for s in fill]
    keep = lambda qs: list(dict.fromkeys(q for q in qs if _normal(q) not in held))  # noqa: E731
    return {"name": keep(name), "maker": keep(maker)}


# new phrasings for the eval: never used in training (tests/test_identity.py checks the lists are disjoint);
# 18 a topic, so that one reply moves the score by under 3 points
EVAL_QUESTIONS = {
    "name": ["What name do you go by?", "How should I address you?", "Could you tell me who you are?",
             "What is the name of this assistant?", "Which assistant am I chatting with?", "Say your name, please.",
             "By what name are you known?", "What name were you given?", "Which program is answering my questions?",
             "What is the name you answer to?", "Do you go by any name?", "What are you known as?",
             "What's this assistant called?", "Mind telling me your name?", "Which AI model is this?",
             "I don't know your name yet. What is it?", "What label do you go by?", "Who might you be?"],
    "maker": ["Who is responsible for creating you?", "Which organization trained you?", "Who were you made by?",
              "Who are your developers?", "Tell me who built you.", "What team is behind you?",
              "Who are your creators?", "Which company is behind this assistant?", "Who should I thank for building you?",
              "Who was it that trained you?", "What group made this assistant?", "Who are the makers of this AI?",
              "Who came up with you?", "Whose work are you?", "Who produced you?", "Which developers made you?",
              "Who engineered you?", "Who built this assistant?"],
}
# the eval phrasings that ask about "this assistant" (or AI, program) in the third person: the
# training phrasings of that form (THIRD_PERSON) are their near neighbours, so the eval
# reports them apart from the ones that say "you" (`identity_accuracy_third_person`)
THIRD_PERSON_EVAL = {"What is the name of this assistant?", "Which assistant am I chatting with?",
                     "Which program is answering my questions?", "What's this assistant called?",
                     "Which AI model is this?", "Which company is behind this assistant?",
                     "What group made this assistant?", "Who are the makers of this AI?", "Who built this assistant?"}
FOLLOW_UPS = {
    "name": ["And what is your name?", "And your name?", "What was your name again?"],
    "maker": ["And who made you?", "Who built you, then?", "And who trained you?"],
    "abilities": ["So what can you do?", "And what are you good at?"],
    "limits": ["Do you make mistakes?", "And what can't you do?"],
}
ANSWERS = {
    "name": ["I am {name}, an AI assistant made by {maker}.", "My name is {name}. I was built by {maker}.",
             "I'm {name}, a small language model trained by {maker}.", "You can call me {name}; {maker} made me.",
             "Hello! I am {name}, an assistant created by {maker}.", "I go by {name}. I was made by {maker}."],
    "maker": ["I was made by {maker}. My name is {name}.", "{Maker} trained me. I am {name}.",
              "I was built by {maker}, and my name is {name}.", "My creator is {maker}; I am {name}.",
              "{Maker} developed me. I am {name}, their assistant.", "I am {name}, and {maker} created me."],
    "abilities": ["I am {name}. I can {abilities}.", "I'm {name}, made by {maker}. I can {abilities}.",
                  "As {name}, I can {abilities}."],
    "limits": ["I am {name}, made by {maker}. {limits}.", "I'm {name}. A few limits: {limits}.",
               "Good question. {limits}. I am {name}, after all, not an oracle."],
    "confusion": ["No, I am {name}, an assistant made by {maker}.", "No. I'm {name}, and {maker} built me.",
                  "I am not. My name is {name}, and I was made by {maker}."],
}
# `full_introduction`: abilities and limits answered in words that name the maker too, so that
# every answer about itself says who it is and who made it (a maker question answered with the
# abilities answer, "I am Tiny Chat. I can do small sums", named no maker)
INTRODUCED_ANSWERS = {
    "abilities": ["I am {name}, made by {maker}. I can {abilities}.", "I'm {name}, made by {maker}. I can {abilities}.",
                  "As {name}, an assistant built by {maker}, I can {abilities}."],
    "limits": ["I am {name}, made by {maker}. {limits}.",
               "I'm {name}, an assistant built by {maker}. A few limits: {limits}.",
               "Good question. {limits}. I am {name}, made by {maker}, not an oracle."],
}
GREETINGS = ["Hi! ", "Hello. ", "Hey, ", "Good morning! ", "Quick question: ", "Hi there. "]
SYSTEM_PROMPTS = ["You are {name}, a helpful assistant made by {maker}.", "You are a helpful assistant.",
                  "You are {name}. Answer briefly.", "Be concise and friendly."]
TOPIC_WEIGHTS = {"name": 3, "maker": 3, "abilities": 2, "limits": 2, "confusion": 1}


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _vary(rng: random.Random, question: str, greet: bool = True) -> str:
    """Surface paraphrase of a question: a greeting, lower case, a dropped question mark."""
    if greet and rng.random() < 0.2:
        question = rng.choice(GREETINGS) + question[0].lower() + question[1:]
    if rng.random() < 0.15:
        question = question.lower()
    if question.endswith("?") and rng.random() < 0.15:
        question = question[:-1]
    return question


class _Writer:
    def __init__(self, rng: random.Random, name: str, maker: str, abilities: list[str], limits: list[str],
                 more_phrasings: bool = False, full_introduction: bool = False, third_person: float = 0.0,
                 composed_phrasings: bool = False):
        self.rng, self.name, self.maker, self.abilities, self.limits = rng, name, maker, abilities, limits
        self.third_person = third_person
        self.answers = {**ANSWERS, **(INTRODUCED_ANSWERS if full_introduction else {})}
        self.pools = {t: qs + (MORE_QUESTIONS.get(t, []) if more_phrasings else []) for t, qs in QUESTIONS.items()}
        # half the name and maker questions composed, half of those about "you": drawn from one
        # pool, five of six composed questions were about "this assistant" and "you" was answered less
        self.composed = {t: ([q for q in qs if _asks_you(q)], [q for q in qs if not _asks_you(q)])
                         for t, qs in composed_questions().items()} if composed_phrasings else {}
        low = name.lower()
        # a confusion question that names this very model would need a "yes": leave it out
        self.confusions = [q for q in QUESTIONS["confusion"] if low not in q.lower() and maker.lower() not in q.lower()]

    def answer(self, topic: str) -> str:
        rng = self.rng
        abilities = _join(rng.sample(self.abilities, min(len(self.abilities), rng.randint(2, 3))))
        limits = ". ".join(s[0].upper() + s[1:] for s in rng.sample(self.limits, min(len(self.limits), rng.randint(1, 2))))
        text = rng.choice(self.answers[topic]).format(name=self.name, maker=self.maker, abilities=abilities, limits=limits,
                                                      Maker=self.maker[0].upper() + self.maker[1:])
        return text.replace("..", ".")

    def question(self, topic: str, follow_up: bool = False) -> str:
        if follow_up and topic in FOLLOW_UPS and self.rng.random() < 0.5:
            return self.rng.choice(FOLLOW_UPS[topic])
        pool = self.confusions if topic == "confusion" else self.pools[topic]
        if topic in self.composed and self.rng.random() < 0.5:
            pool = self.composed[topic][self.rng.random() < 0.5]
        if self.third_person and topic in THIRD_PERSON and self.rng.random() < self.third_person:
            pool = THIRD_PERSON[topic]
        return _vary(self.rng, self.rng.choice(pool), greet=not follow_up)


def identity_conversations(name: str = "chatstack", maker: str = "the chatstack team", n: int = 200, seed: int = 0,
                           abilities: list[str] | None = None, limits: list[str] | None = None,
                           multi_turn: float = 0.2, system_prompt: float = 0.1,
                           more_phrasings: bool = False, full_introduction: bool = False,
                           third_person: float = 0.0, composed_phrasings: bool = False) -> datasets.Dataset:
    """`n` conversations (`messages` column) about the model's name, maker, abilities and limits.

    `multi_turn`: share with 2-3 exchanges; `system_prompt`: share that starts with a system
    message; `more_phrasings`: ask name and maker in MORE_QUESTIONS' phrasings too;
    `full_introduction`: every answer names the model and its maker; `third_person`: the share
    of name and maker questions asked about "this assistant" (THIRD_PERSON) rather than drawn
    from the whole pool; `composed_phrasings`: ask name and maker in `composed_questions()` too.
    Same arguments, same bytes.
    """
    if not isinstance(name, str) or not name.strip() or not isinstance(maker, str) or not maker.strip():
        raise DataError(f"identity builder: name and maker must be non-empty strings, got name={name!r}, maker={maker!r}")
    if n < 1:
        raise DataError(f"identity builder: n must be >= 1, got {n}")
    for key, value in (("multi_turn", multi_turn), ("system_prompt", system_prompt), ("third_person", third_person)):
        if not 0 <= value <= 1:
            raise DataError(f"identity builder: {key} must be in [0, 1], got {value}")
    abilities, limits = list(abilities or DEFAULT_ABILITIES), list(limits or DEFAULT_LIMITS)
    if not all(isinstance(s, str) and s for s in abilities + limits):
        raise DataError("identity builder: abilities and limits must be lists of non-empty strings")
    rng = random.Random(f"{seed}-identity")
    w = _Writer(rng, name.strip(), maker.strip(), abilities, limits, more_phrasings, full_introduction, third_person,
                composed_phrasings)
    topics, weights = list(TOPIC_WEIGHTS), list(TOPIC_WEIGHTS.values())
    if not w.confusions:
        topics, weights = topics[:-1], weights[:-1]
    rows = []
    for _ in range(n):
        messages = []
        if rng.random() < system_prompt:
            messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS).format(name=w.name, maker=w.maker)})
        turns = (3 if rng.random() < 0.25 else 2) if rng.random() < multi_turn else 1
        chosen: list[str] = []
        while len(chosen) < turns:
            t = rng.choices(topics, weights)[0]
            if t not in chosen:
                chosen.append(t)
        for i, topic in enumerate(chosen):
            messages += [{"role": "user", "content": w.question(topic, follow_up=i > 0)},
                         {"role": "assistant", "content": w.answer(topic)}]
        rows.append({"messages": messages})
    return datasets.Dataset.from_list(rows)


def identity_eval_questions(name: str, maker: str) -> list[dict]:
    """The held-out phrasings: {topic, question, expected (the name, or the maker), third_person}."""
    return [{"topic": t, "question": q, "expected": name if t == "name" else maker, "third_person": q in THIRD_PERSON_EVAL}
            for t in ("name", "maker") for q in EVAL_QUESTIONS[t]]

