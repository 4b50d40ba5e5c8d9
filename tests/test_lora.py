"""LoRA on the sft stage (`peft` in the YAML): the adapter learns (loss falls), is saved, and
the merged full model loads with transformers alone and computes what base + adapter does."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from helpers_chat_model import parrot_model

ANSWER = "I am Nimbus, made by Cloudworks Lab."


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    from chatstack.config import parse_config
    from chatstack.sft import SFTStageConfig, train

    root = tmp_path_factory.mktemp("lora")
    base = parrot_model()  # a trained model: LoRA adapts trained weights (a random model's tiny embeddings cap its logits)
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": ANSWER}]}
            for q in ("Who are you?", "What is your name?", "Who made you?", "Introduce yourself.")]
    (root / "chats.jsonl").write_text("\n".join(json.dumps(r) for r in rows * 8))
    data = root / "chats.yaml"
    data.write_text(yaml.safe_dump({"files": str(root / "chats.jsonl")}))
    cfg = parse_config(SFTStageConfig, None, ["--peft", json.dumps({"r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
                                                                      "target_modules": ["c_attn", "c_proj", "c_fc"]})],
                       output_dir=str(root / "sft"), model_name_or_path=str(base), dataset=str(data), max_steps=20,
                       per_device_train_batch_size=8, learning_rate=1e-2, max_length=128, eval_questions=0,
                       logging_steps=4, save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True)
    cfg.eval_format_prompts, cfg.eval_identity = 4, {"name": "Nimbus", "maker": "Cloudworks Lab"}  # read with getattr
    assert cfg.peft["r"] == 8 and cfg.merge_adapter
    metrics = train(cfg)
    return root, base, metrics


def test_adapter_learns(lora_run):
    root, _, metrics = lora_run
    losses = [h["loss"] for h in json.loads((root / "sft" / "log_history.json").read_text()) if "loss" in h]
    assert len(losses) >= 4 and losses[-1] < 0.5 * losses[0], losses
    assert "format_compliance" in metrics and "identity_accuracy" in metrics  # the stage's evals ran


def test_adapter_is_saved_and_only_the_adapter_trained(lora_run):
    root, base, _ = lora_run
    adapter = root / "sft" / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["r"] == 8 and cfg["peft_type"] == "LORA"
    from safetensors.torch import load_file
    keys = load_file(adapter / "adapter_model.safetensors").keys()
    assert keys and all("lora_" in k for k in keys)


def test_merged_model_loads_with_transformers_alone(lora_run):
    root, base, _ = lora_run
    merged = root / "sft"
    code = ("import sys, json, torch\n"
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            "m = AutoModelForCausalLM.from_pretrained(sys.argv[1]); t = AutoTokenizer.from_pretrained(sys.argv[1])\n"
            "assert not any('lora' in n for n, _ in m.named_parameters())\n"
            "assert 'chatstack' not in sys.modules and 'peft' not in sys.modules\n"
            "ids = t.apply_chat_template([{'role': 'user', 'content': 'Who are you?'}], add_generation_prompt=True,"
            " return_tensors='pt', return_dict=True)['input_ids']\n"
            "print(json.dumps(m(ids).logits[0, -1].tolist()))\n")
    out = subprocess.run([sys.executable, "-c", code, str(merged)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=root)
    assert out.returncode == 0, out.stderr
    merged_logits = torch.tensor(json.loads(out.stdout.strip().splitlines()[-1]))

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(merged)
    ids = tok.apply_chat_template([{"role": "user", "content": "Who are you?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]
    base_model = AutoModelForCausalLM.from_pretrained(base).eval()
    with torch.no_grad():
        before = base_model(ids).logits[0, -1]
        with_adapter = PeftModel.from_pretrained(base_model, root / "sft" / "adapter").eval()(ids).logits[0, -1]
    assert torch.allclose(merged_logits, with_adapter, atol=1e-3)  # merged = base + adapter
    assert not torch.allclose(merged_logits, before, atol=1e-2)  # and the adapter changed the model
