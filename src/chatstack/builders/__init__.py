"""Data builders: functions that write datasets (SFT conversations, preference pairs, RL
prompts) and are named from datasets_cfg by `builder: <name>`.

A builder takes keyword args from the YAML (plus `seed`) and returns a `datasets.Dataset`.
The names are in chatstack.data.registry.BUILDERS (name -> "module:function"): add a new
builder there.
"""
