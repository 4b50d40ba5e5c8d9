"""Post-training takes any causal LM: a tiny random Llama whose tokenizer has no chat template,
no chat tokens and no pad token goes through SFT -> reward -> GRPO (seconds, on CPU)."""

import json

import pytest

STAGE_ARGS = ["--use_cpu", "true", "--bf16", "false", "--report_to", "none", "--logging_steps", "1"]


@pytest.fixture(scope="module")
def llama_base(tmp_path_factory):
    """A Llama-architecture base as the Hub ships one: <s>/</s> only, no template, no pad."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from chatstack.world.datasets import pretraining_text

    out = tmp_path_factory.mktemp("llama") / "base"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = pretraining_text("tiny")["text"][:300]
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=500, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")
    config = LlamaConfig(
        vocab_size=len(hf_tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        bos_token_id=hf_tok.bos_token_id,
        eos_token_id=hf_tok.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    hf_tok.save_pretrained(out)
    assert not hf_tok.chat_template and hf_tok.pad_token is None
    return out


def run(args: list[str]) -> dict:
    from chatstack.cli import main

    assert main(args + STAGE_ARGS) == 0
    out = args[args.index("--output_dir") + 1]
    return json.loads(open(f"{out}/metrics.json").read())


def test_llama_sft_reward_grpo(llama_base, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sft_dir, rm_dir, grpo_dir = (str(tmp_path / s) for s in ("sft", "reward", "grpo"))
    sft = run(
        [
            "sft",
            "--model_name_or_path",
            str(llama_base),
            "--output_dir",
            sft_dir,
            "--dataset",
            "tiny_sft",
            "--max_steps",
            "2",
            "--per_device_train_batch_size",
            "4",
            "--max_length",
            "128",
            "--eval_questions",
            "4",
            "--eval_format_prompts",
            "4",
            "--eval_max_new_tokens",
            "8",
        ]
    )
    said = " | ".join(sft["chat_format_added"])
    assert "<|im_start|>" in said and "pad token" in said and "chat template" in said and "resized" in said, said
    tok = AutoTokenizer.from_pretrained(sft_dir)
    model = AutoModelForCausalLM.from_pretrained(sft_dir)
    assert model.config.model_type == "llama" and model.get_input_embeddings().weight.shape[0] == len(tok)
    assert tok.eos_token == "<|im_end|>" and "{% generation %}" in tok.chat_template
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")

    reward = run(
        [
            "reward",
            "--model_name_or_path",
            sft_dir,
            "--output_dir",
            rm_dir,
            "--dataset",
            "tiny_preferences",
            "--max_steps",
            "2",
            "--per_device_train_batch_size",
            "4",
            "--max_length",
            "128",
        ]
    )
    assert 0.0 <= reward["pairwise_accuracy"] <= 1.0

    grpo = run(
        [
            "grpo",
            "--model_name_or_path",
            sft_dir,
            "--output_dir",
            grpo_dir,
            "--max_steps",
            "1",
            "--per_device_train_batch_size",
            "4",
            "--num_generations",
            "4",
            "--max_completion_length",
            "8",
            "--eval_prompts",
            "4",
            "--pass_k",
            "2",
        ]
    )
    assert {"accuracy_before", "accuracy_after"} <= set(grpo)
    assert AutoModelForCausalLM.from_pretrained(grpo_dir).config.model_type == "llama"


def test_a_chatstack_tokenizer_is_left_as_it_is(micro_outputs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chatstack.stage import adopt_chat_format

    tok = AutoTokenizer.from_pretrained(micro_outputs / "sft")
    model = AutoModelForCausalLM.from_pretrained(micro_outputs / "sft")
    template, n = tok.chat_template, len(tok)
    assert adopt_chat_format(model, tok, "sft") == [] and tok.chat_template == template and len(tok) == n
