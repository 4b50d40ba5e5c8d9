"""The tiny recipe's pretraining mix: the world's text (chatstack.world.datasets.pretraining_text)
plus tool-call conversations about made-up practice people (builders.tools), as nanochat's
midtraining puts tool use into the last part of pretraining. A packed pretraining token costs a
fraction of an SFT token (no padding), so the base already copies names and numbers into calls
and answers from results when SFT begins. `identity_chats` does the same for the assistant's
identity conversations (nanochat's midtraining mixes them in too): the tiny base has read no
sentence like "I am Tiny Chat, an assistant made by ...", and SFT alone leaves them broken.
`reading` adds reading-comprehension documents: an article about a made-up person (a name the
world does not use, attributes drawn afresh) followed by questions about it and their answers.
Everything else in the tiny world can be learnt by heart; these can only be answered by looking
back in the context and copying, the skill every tool call needs (the question's name or
operands into the call, the result's value into the answer).
Here, not in chatstack.world: the world knows nothing of the tools built on it."""
from __future__ import annotations

import random

import datasets

from chatstack.builders.identity import identity_conversations
from chatstack.builders.tools import practice_people, tool_conversations
from chatstack.errors import DataError
from chatstack.world.datasets import answer_sentence, chatml, get_world, pretraining_text
from chatstack.world.generator import ATTRIBUTES


def pretraining_mix(world="tiny", seed: int = 0, tool_chats: dict | None = None, identity_chats: dict | None = None,
                    reading: dict | None = None, passes: int = 1, test_size: float = 0.02,
                    **text_args) -> datasets.Dataset | datasets.DatasetDict:
    """pretraining_text(world, seed, **text_args), plus `tool_chats` (keyword args of
    tool_conversations, e.g. {n: 150, search_k: 1, ...}) and `identity_chats` (of
    identity_conversations: {name, maker, n, seed}) rendered as the chat template renders them,
    and `reading` ({n, questions, facts}: reading_documents), all shuffled with the world's seed.

    `passes` > 1 writes the mix that many times (the stage's max_steps then make about one epoch),
    each pass with `reading.n` documents of its own: made-up people who never come back, so they
    can only be read, never learnt by heart as a document read every epoch can be. The rest repeats
    as epochs repeat it. The text repeats, so a random held-out split would hold copies of trained
    rows: `test_size` of the one-pass text (reading documents aside) is held out here instead, from
    every pass, and returned as the "test" split."""
    if not isinstance(passes, int) or passes < 1:
        raise DataError(f"passes: must be a whole number >= 1, got {passes!r}")
    text = pretraining_text(world, seed, **text_args)
    if not tool_chats and not identity_chats and not reading and passes == 1:
        return text
    reading_docs = reading_documents(world, seed=seed + 13, **{**reading, "n": reading.get("n", 1000) * passes}
                                     ) if reading else []
    chats = [{"text": chatml(r["messages"]), "kind": f"tool_{r['kind']}"}
             for r in (tool_conversations(get_world(world), **{"seed": seed + 7, **tool_chats}) if tool_chats else [])]
    chats += [{"text": chatml(r["messages"]), "kind": "identity"}
              for r in (identity_conversations(**{"seed": seed + 11, **identity_chats}) if identity_chats else [])]
    shuffle = random.Random(f"{get_world(world).config.seed}-midtraining").shuffle
    if passes == 1:
        docs = text.to_list() + reading_docs + chats
        shuffle(docs)
        return datasets.Dataset.from_list(docs)
    if not 0 < test_size < 1:
        raise DataError(f"test_size: must be a fraction in (0, 1), got {test_size!r}")
    docs = text.to_list() + chats
    order = list(range(len(docs)))
    random.Random(f"{seed}-heldout").shuffle(order)
    cut = max(1, round(test_size * len(docs)))
    held_out = [docs[i] for i in sorted(order[:cut])]
    train = [docs[i] for i in sorted(order[cut:])] * passes + reading_docs
    shuffle(train)
    return datasets.DatasetDict({"train": datasets.Dataset.from_list(train), "test": datasets.Dataset.from_list(held_out)})


def reading_documents(world="tiny", seed: int = 0, n: int = 1000, questions: int = 1,
                      facts: int | None = None) -> list[dict]:
    """`n` documents, each an article about a made-up practice person (builders.tools.practice_people)
    in one of the world's paraphrases, then `questions` of its facts asked and answered in the
    QA text's format ("Q: ...\nA: ..."): the answer is in the article and nowhere else.
    `facts` shortens the article to that many of its sentences (the asked ones among them): the
    same look-back-and-copy at a fraction of the tokens, which the base's recall pays for."""
    if not isinstance(n, int) or n < 0:
        raise DataError(f"reading: n must be a whole number >= 0, got {n!r}")
    if not isinstance(questions, int) or not 1 <= questions <= len(ATTRIBUTES):
        raise DataError(f"reading: questions must be a whole number in 1..{len(ATTRIBUTES)}, got {questions!r}")
    if facts is not None and (not isinstance(facts, int) or not questions <= facts <= len(ATTRIBUTES)):
        raise DataError(f"reading: facts must be a whole number in {questions}..{len(ATTRIBUTES)} "
                        f"(at least the questions), got {facts!r}")
    w = get_world(world)
    rng = random.Random(f"{w.config.seed}-{seed}-reading")
    docs = []
    for people in practice_people(w, n, seed):
        for p in people:
            asked = rng.sample(list(ATTRIBUTES), questions)
            lines = [f"Q: {rng.choice(w.questions(p, attr))}\nA: {answer_sentence(p.name, attr, p.value(attr))}"
                     for attr in asked]
            if facts is None or facts == len(ATTRIBUTES):
                article = w.article(p, rng.randrange(w.config.paraphrases), rng)
            else:
                sentences = w.article_sentences(p, rng.randrange(w.config.paraphrases))
                kept = asked + rng.sample([a for a in ATTRIBUTES if a not in asked], facts - questions)
                rng.shuffle(kept)
                article = " ".join(sentences[a] for a in kept)
            docs.append({"text": article + "\n\n" + "\n".join(lines), "kind": "reading"})
    return docs
