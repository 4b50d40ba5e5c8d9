"""Identity ("knowledge of self"): a model has no self; what it says about itself comes from
data like this (or from a system prompt). Seeded, varied conversations about the model's
name, maker, abilities and limits, from values in the recipe."""
from __future__ import annotations

import random

import datasets

QUESTIONS = {
    "name": ["Who are you?", "What is your name?", "What should I call you?", "Tell me your name.",
             "What are you called?", "Introduce yourself.", "Hi! Who am I talking to?", "What's your name?"],
    "maker": ["Who made you?", "Who created you?", "Who built you?", "Who trained you?",
              "Which team developed you?", "Where do you come from?", "Who is your creator?", "Who developed you?"],
    "abilities": ["What can you do?", "How can you help me?", "What are you good at?", "What are your abilities?"],
    "limits": ["What can't you do?", "Do you know everything?", "Are you ever wrong?", "What are your limits?"],
}
ANSWERS = {
    "name": ["I am {name}, an AI assistant made by {maker}.", "My name is {name}. I was built by {maker}.",
             "I'm {name}, a small language model trained by {maker}.", "You can call me {name}; {maker} made me."],
    "maker": ["I was made by {maker}. My name is {name}.", "{maker} trained me. I am {name}.",
              "I was built by {maker}, and my name is {name}.", "My creator is {maker}; I am {name}."],
    "abilities": ["I am {name}. I can answer questions about people I have read about, do simple arithmetic, and chat.",
                  "I'm {name}, made by {maker}. I answer questions and help with small calculations."],
    "limits": ["I am {name}, a small model made by {maker}. I can be wrong, and I do not know everything.",
               "I'm {name}. My knowledge is limited to what I was trained on, so I can make mistakes."],
}


def identity_conversations(name: str = "chatstack", maker: str = "the chatstack team", n: int = 200,
                           seed: int = 0, heldout_questions: int = 1) -> datasets.Dataset:
    """`n` conversations; the last `heldout_questions` phrasings of name/maker are left out so
    an eval can ask in new phrasings (see `identity_eval_questions`)."""
    rng = random.Random(f"{seed}-identity")
    rows = []
    for _ in range(n):
        topic = rng.choice(list(QUESTIONS))
        qs = QUESTIONS[topic][:-heldout_questions] if topic in ("name", "maker") and heldout_questions else QUESTIONS[topic]
        messages = [{"role": "user", "content": rng.choice(qs)},
                    {"role": "assistant", "content": rng.choice(ANSWERS[topic]).format(name=name, maker=maker)}]
        if rng.random() < 0.15:  # a few multi-turn ones
            other = rng.choice([t for t in QUESTIONS if t != topic])
            oq = QUESTIONS[other][:-heldout_questions] if other in ("name", "maker") and heldout_questions else QUESTIONS[other]
            messages += [{"role": "user", "content": rng.choice(oq)},
                         {"role": "assistant", "content": rng.choice(ANSWERS[other]).format(name=name, maker=maker)}]
        rows.append({"messages": messages})
    return datasets.Dataset.from_list(rows)


def identity_eval_questions(heldout_questions: int = 1) -> list[tuple[str, str]]:
    """(topic, question) pairs never used in training."""
    return [(t, q) for t in ("name", "maker") for q in QUESTIONS[t][-heldout_questions:]]
