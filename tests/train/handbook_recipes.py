"""Test copies of the alignment-handbook's SFT and DPO recipes (recipes/*/{sft,dpo}/*.yaml).

Written here in our own words: every key each real recipe has, with its value; hub data sources
keep their ids, splits and weights (tests swap the ids for local directories on the command line).
Long inline templates are shortened where only their shape matters (SmolLM3's keeps its
`{% generation %}` markers and its use of per-row `chat_template_kwargs`).
"""

from __future__ import annotations

ZEPHYR_TEMPLATE = ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
                   "{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n"
                   "{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n"
                   "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
                   "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
SMOLLM2_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
                    "{{ '<|im_start|>assistant\n' }}{% endif %}")
STARCHAT_TEMPLATE = ("{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
                     + CHATML)
GEMMA_TEMPLATE = ("{% if messages[0]['role'] == 'user' or messages[0]['role'] == 'system' %}{{ bos_token }}{% endif %}"
                  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
                  "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                  "{% elif messages[-1]['role'] == 'assistant' %}{{ eos_token }}{% endif %}")
SMOLLM3_MID_TEMPLATE = ('{%- for message in messages -%}\n    {{- "<|im_start|>" + message.role + "\\n" + '
                        'message.content + "<|im_end|>" + "\\n" -}}\n{%- endfor -%}\n{%- if add_generation_prompt -%}'
                        '\n\t{{- "<|im_start|>assistant\\n" -}}\n{%- endif -%}')
SMOLLM3_SFT_TEMPLATE = (
    "{%- if enable_thinking is not defined -%}{%- set enable_thinking = true -%}{%- endif -%}"
    "{{- '<|im_start|>system\\nReasoning Mode: ' + ('/think' if enable_thinking else '/no_think') + '<|im_end|>\\n' -}}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'assistant' -%}{% generation %}"
    "{{ '<|im_start|>assistant\\n' + message.content + '<|im_end|>\\n' }}{% endgeneration %}"
    "{%- else -%}{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif -%}"
    "{%- endfor -%}{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}")
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
GC_KWARGS = {"use_reentrant": False}


def mixture(sources, test_split_size=None, seed=0, columns=("messages",)):
    """A handbook dataset_mixture from (id, config, split, weight) tuples."""
    spec = {"datasets": [{"id": i, "config": c, "split": s, "columns": list(columns), "weight": w}
                         for i, c, s, w in sources]}
    if test_split_size is not None:
        spec["test_split_size"] = test_split_size
    if seed is not None:
        spec["seed"] = seed
    return spec


def pair(ds_id, train, test, weight=1.0, config="default"):
    return [(ds_id, config, train, weight), (ds_id, config, test, weight)]


PREFS = ("chosen", "rejected")
UF = "HuggingFaceH4/ultrafeedback_binarized"

SFT_COMMON = {"bf16": True, "do_eval": True, "eval_strategy": "epoch", "gradient_checkpointing": True,
              "gradient_checkpointing_kwargs": GC_KWARGS, "hub_strategy": "every_save", "log_level": "info",
              "logging_steps": 5, "logging_strategy": "steps", "lr_scheduler_type": "cosine", "max_steps": -1,
              "overwrite_output_dir": True, "push_to_hub": True, "remove_unused_columns": True, "seed": 42,
              "warmup_ratio": 0.1}
DPO_COMMON = {"bf16": True, "do_eval": True, "eval_strategy": "steps", "eval_steps": 100,
              "gradient_checkpointing": True,
              "gradient_checkpointing_kwargs": GC_KWARGS, "learning_rate": 5.0e-7, "log_level": "info",
              "logging_steps": 10, "lr_scheduler_type": "cosine", "max_length": 1024, "max_prompt_length": 512,
              "optim": "adamw_torch", "push_to_hub": True, "seed": 42, "warmup_ratio": 0.1}
SAVE_STEPS = {"save_strategy": "steps", "save_steps": 100, "save_total_limit": 1}
BASE_7B = {"model_revision": "main", "torch_dtype": "bfloat16", "attn_implementation": "flash_attention_2"}

RECIPES: dict[str, tuple[str, dict]] = {
    "zephyr-7b-beta/sft/config_full": ("sft", {
        "model_name_or_path": "mistralai/Mistral-7B-v0.1", **BASE_7B, "chat_template": ZEPHYR_TEMPLATE,
        "dataset_mixture": mixture(pair("HuggingFaceH4/ultrachat_200k", "train_sft", "test_sft"), 1000),
        "dataset_num_proc": 12, **SFT_COMMON, "gradient_accumulation_steps": 1, "hub_model_id": "zephyr-7b-sft-full",
        "learning_rate": 2.0e-05, "max_seq_length": 2048, "num_train_epochs": 1,
        "output_dir": "data/zephyr-7b-sft-full",
        "per_device_eval_batch_size": 8, "per_device_train_batch_size": 16, "report_to": ["wandb"], **SAVE_STEPS}),
    "zephyr-7b-beta/sft/config_qlora": ("sft", {
        "model_name_or_path": "mistralai/Mistral-7B-v0.1", **BASE_7B, "load_in_4bit": True, "use_peft": True,
        "lora_r": 16, "lora_alpha": 16, "lora_dropout": 0.05, "lora_target_modules": LORA_TARGETS,
        "chat_template": ZEPHYR_TEMPLATE,
        "dataset_mixture": mixture(pair("HuggingFaceH4/ultrachat_200k", "train_sft", "test_sft"), 1000),
        "dataset_num_proc": 12, **{k: v for k, v in SFT_COMMON.items() if k != "remove_unused_columns"},
        "gradient_checkpointing_kwargs": {"use_reentrant": False}, "gradient_accumulation_steps": 2,
        "hub_model_id": "zephyr-7b-sft-qlora", "learning_rate": 2.0e-04, "max_seq_length": 2048,
        "num_train_epochs": 1, "output_dir": "data/zephyr-7b-sft-qlora", "per_device_eval_batch_size": 8,
        "per_device_train_batch_size": 4, "report_to": ["tensorboard"], **SAVE_STEPS}),
    "zephyr-7b-beta/dpo/config_full": ("dpo", {
        "model_name_or_path": "alignment-handbook/zephyr-7b-sft-full", "torch_dtype": None,
        "dataset_mixture": mixture(pair(UF, "train_prefs", "test_prefs"), 2000, columns=PREFS), "dataset_num_proc": 12,
        **DPO_COMMON, "beta": 0.01, "gradient_accumulation_steps": 2, "hub_model_id": "zephyr-7b-dpo-full",
        "num_train_epochs": 1, "output_dir": "data/zephyr-7b-dpo-full", "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 8, **SAVE_STEPS}),
    "zephyr-7b-beta/dpo/config_qlora": ("dpo", {
        "model_name_or_path": "alignment-handbook/zephyr-7b-sft-qlora", "torch_dtype": "bfloat16",
        "attn_implementation": "flash_attention_2", "use_peft": True, "load_in_4bit": True, "lora_r": 128,
        "lora_alpha": 128, "lora_dropout": 0.05, "lora_target_modules": LORA_TARGETS,
        "dataset_mixer": {UF: 1.0}, "dataset_splits": ["train_prefs", "test_prefs"], "dataset_num_proc": 12,
        **DPO_COMMON, "gradient_checkpointing_kwargs": {"use_reentrant": False}, "beta": 0.01,
        "gradient_accumulation_steps": 4, "hub_model_id": "zephyr-7b-dpo-qlora", "learning_rate": 5.0e-6,
        "num_train_epochs": 1, "optim": "paged_adamw_32bit", "output_dir": "data/zephyr-7b-dpo-qlora",
        "per_device_train_batch_size": 4, "per_device_eval_batch_size": 8, **SAVE_STEPS}),
    "smollm2/sft/config": ("sft", {
        "model_name_or_path": "HuggingFaceTB/SmolLM2-1.7B", **BASE_7B, "chat_template": SMOLLM2_TEMPLATE,
        "dataset_name": "HuggingFaceTB/smoltalk", "dataset_config": "all", "dataset_train_split": "train",
        "dataset_test_split": "test", "dataset_num_proc": 24, **SFT_COMMON, "gradient_accumulation_steps": 4,
        "gradient_checkpointing_kwargs": {"use_reentrant": False}, "hub_model_id": "smollm2-1.7B-sft",
        "learning_rate": 3.0e-04, "max_seq_length": 8192, "num_train_epochs": 2, "output_dir": "data/smollm2-1.7B-sft",
        "per_device_eval_batch_size": 4, "per_device_train_batch_size": 4, "report_to": ["tensorboard", "wandb"],
        "save_strategy": "no"}),
    "smollm2/sft/config_smol": ("sft", {
        "model_name_or_path": "HuggingFaceTB/SmolLM2-360M", **BASE_7B, "chat_template": SMOLLM2_TEMPLATE,
        "dataset_name": "HuggingFaceTB/smol-smoltalk", "dataset_train_split": "train", "dataset_test_split": "test",
        "dataset_num_proc": 24, **SFT_COMMON, "gradient_accumulation_steps": 4,
        "gradient_checkpointing_kwargs": {"use_reentrant": False}, "hub_model_id": "smollm2-360M-sft",
        "learning_rate": 1.0e-03, "max_seq_length": 8192, "num_train_epochs": 2, "output_dir": "data/smollm2-360M-sft",
        "per_device_eval_batch_size": 4, "per_device_train_batch_size": 4, "report_to": ["tensorboard", "wandb"],
        "save_strategy": "no"}),
}


def _smollm2_dpo(model: str, epochs: int, hub_id: str) -> dict:
    return {"model_name_or_path": model, "torch_dtype": "bfloat16",
            "dataset_mixture": mixture(pair(UF, "train_prefs", "test_prefs"), 2000, columns=PREFS),
            "dataset_num_proc": 12, **DPO_COMMON, "beta": 0.5, "hub_private_repo": True,
            "gradient_accumulation_steps": 8, "hub_model_id": hub_id, "learning_rate": 1.0e-6,
            "num_train_epochs": epochs, "output_dir": f"data/{hub_id}", "per_device_train_batch_size": 2,
            "per_device_eval_batch_size": 4, "report_to": ["tensorboard", "wandb"], "save_strategy": "no"}


def _cai_sft(source: str) -> dict:
    return {"model_name_or_path": "mistralai/Mistral-7B-v0.1", **BASE_7B, "chat_template": ZEPHYR_TEMPLATE,
            "dataset_mixture": mixture([(source, "default", "train_sft", 1.0),
                                        ("HuggingFaceH4/ultrachat_200k", "default", "test_sft", 1.0)], 1000),
            "dataset_num_proc": 12, **SFT_COMMON, "do_train": True, "gradient_accumulation_steps": 4,
            "hub_model_id": "mistral-7b-sft-constitutional-ai", "learning_rate": 2.0e-05, "max_seq_length": 2048,
            "num_train_epochs": 1, "output_dir": "data/mistral-7b-sft-constitutional-ai",
            "per_device_eval_batch_size": 8, "per_device_train_batch_size": 8, "report_to": ["tensorboard"],
            **SAVE_STEPS}


def _scan(model: str, source: str, test_size: int, hub_id: str, revision: str, out: str, do_train: bool) -> dict:
    recipe = {"model_name_or_path": model, "torch_dtype": None,
              "dataset_mixture": mixture(pair(source, "train_prefs", "test_prefs"), test_size, columns=PREFS),
              "dataset_num_proc": 12, **{k: v for k, v in DPO_COMMON.items() if k not in ("log_level", "max_length",
                                                                                          "push_to_hub")},
              "beta": 0.01, "loss_type": "sigmoid", "gradient_accumulation_steps": 2, "hub_model_id": hub_id,
              "hub_model_revision": revision, "num_train_epochs": 1, "output_dir": out,
              "per_device_train_batch_size": 8, "per_device_eval_batch_size": 8, **SAVE_STEPS}
    if do_train:
        recipe["do_train"] = True
    return recipe


SMOLLM3_COMMON = {"torch_dtype": "bfloat16", "attn_implementation": "flash_attention_2", "trust_remote_code": True,
                  "bf16": True, "do_eval": False, "eval_strategy": "no", "gradient_accumulation_steps": 2,
                  "gradient_checkpointing": True, "gradient_checkpointing_kwargs": {"use_reentrant": True},
                  "hub_strategy": "every_save", "log_level": "info", "logging_steps": 1, "logging_strategy": "steps",
                  "lr_scheduler_type": "cosine_with_min_lr", "lr_scheduler_kwargs": {"min_lr_rate": 0.1},
                  "max_grad_norm": 0.2, "overwrite_output_dir": True, "per_device_train_batch_size": 1,
                  "push_to_hub": True, "report_to": ["wandb"], "save_total_limit": 1, "seed": 42,
                  "use_liger_kernel": True}
SMOLTALK2 = "HuggingFaceTB/smoltalk2"

RECIPES.update({
    "smollm2/dpo/config": ("dpo", _smollm2_dpo("loubnabnl/smollm2-1.7B-sft", 3, "smollm2-1.7B-dpo")),
    "smollm2/dpo/config_smol": ("dpo", _smollm2_dpo("loubnabnl/smollm2-360M-sft", 2, "smollm2-360M-dpo")),
    "constitutional-ai/sft/config_anthropic": ("sft", _cai_sft("HuggingFaceH4/cai-conversation-harmless")),
    "constitutional-ai/sft/config_grok": ("sft", _cai_sft("HuggingFaceH4/grok-conversation-harmless")),
    "constitutional-ai/dpo/config_anthropic": ("dpo", {
        "model_name_or_path": "alignment-handbook/mistral-7b-sft-constitutional-ai", "torch_dtype": None,
        "dataset_mixture": mixture(pair(UF, "train_prefs", "test_prefs")
                                   + pair("HuggingFaceH4/cai-conversation-harmless", "train_prefs", "test_prefs"),
                                   3000, columns=PREFS),
        "dataset_num_proc": 12, **{k: v for k, v in DPO_COMMON.items() if k != "gradient_checkpointing_kwargs"},
        "beta": 0.1, "do_train": True, "eval_steps": 1000,
        "gradient_accumulation_steps": 1, "hub_model_id": "mistral-7b-dpo-constitutional-ai",
        "lr_scheduler_type": "linear", "num_train_epochs": 3, "optim": "rmsprop",
        "output_dir": "data/mistral-7b-dpo-constitutional-ai", "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 8, **SAVE_STEPS}),
    "pref_align_scan/dpo/config_openhermes": ("dpo", _scan(
        "teknium/OpenHermes-2.5-Mistral-7B", "HuggingFaceH4/orca_dpo_pairs", 500,
        "HuggingFaceH4/openhermes-2.5-mistral-7b-dpo", "v1.0", "data/openhermes-2.5-mistral-7b-dpo-v1.0", True)),
    "pref_align_scan/dpo/config_zephyr": ("dpo", _scan(
        "alignment-handbook/zephyr-7b-sft-full", UF, 2000, "zephyr-7b-align-scan", "dpo-beta-0.01",
        "data/zephyr-7b-align-scan-dpo-beta-0.01", False)),
    "smollm/sft/config": ("sft", {
        "model_name_or_path": "HuggingFaceTB/SmolLM-360M", **BASE_7B, "chat_template": CHATML,
        "dataset_mixture": mixture(
            pair("HuggingFaceTB/Magpie-Pro-300K-Filtered-H4", "train_sft", "test_sft")
            + pair("HuggingFaceTB/self-oss-instruct-sc2-H4", "train_sft", "test_sft")
            + pair("HuggingFaceTB/OpenHermes-2.5-H4", "train_sft", "test_sft", weight=0.001)
            + pair("HuggingFaceTB/everyday-conversations-llama3.1-2k", "train_sft", "test_sft")
            + pair("HuggingFaceTB/instruct-data-basics-smollm-H4", "train_sft", "test_sft"), 0.05),
        "dataset_num_proc": 24, **SFT_COMMON,
        "dataset_kwargs": {"add_special_tokens": False, "append_concat_token": False},
        "gradient_accumulation_steps": 4, "gradient_checkpointing_kwargs": {"use_reentrant": False},
        "hub_model_id": "smollm-360M-instruct-new", "learning_rate": 1.0e-03, "max_seq_length": 2048,
        "num_train_epochs": 1, "output_dir": "data/smollm-360M-instruct-new", "per_device_eval_batch_size": 4,
        "per_device_train_batch_size": 4, "report_to": ["tensorboard", "wandb"], "save_strategy": "no"}),
    "starchat2-15b/sft/config_v0.1": ("sft", {
        "model_name_or_path": "bigcode/starcoder2-15b", **BASE_7B, "chat_template": STARCHAT_TEMPLATE,
        "dataset_mixture": mixture(
            [(f"HuggingFaceH4/{n}", "default", s, 1.0) for s in ("train_sft", "test_sft")
             for n in ("airoboros-3.2", "Code-Feedback", "orca-math-word-problems-200k", "SystemChat", "capybara")],
            1000),
        "dataset_num_proc": 24, **SFT_COMMON, "gradient_accumulation_steps": 2, "hub_model_id": "starchat2-15b-v0.1",
        "learning_rate": 2.0e-05, "max_seq_length": 2048, "num_train_epochs": 3,
        "output_dir": "data/starchat2-15b-v0.1", "per_device_eval_batch_size": 8, "per_device_train_batch_size": 8,
        "report_to": ["tensorboard", "wandb"], "save_strategy": "no"}),
    "starchat2-15b/dpo/config_v0.1": ("dpo", {
        "model_name_or_path": "HuggingFaceH4/starchat2-15b-sft-v0.1", "torch_dtype": "bfloat16",
        "dataset_mixture": mixture([(UF, "default", "train_prefs", 1.0),
                                    ("HuggingFaceH4/orca_dpo_pairs", "default", "train_prefs", 1.0),
                                    (UF, "default", "test_prefs", 1.0),
                                    ("HuggingFaceH4/orca_dpo_pairs", "default", "test_prefs", 1.0)], 2000,
                                   columns=PREFS),
        "dataset_num_proc": 12, **DPO_COMMON, "beta": 0.05, "gradient_accumulation_steps": 8,
        "hub_model_id": "starchat2-15b-dpo-v0.1", "num_train_epochs": 2, "output_dir": "data/starchat2-15b-dpo-v0.1",
        "per_device_train_batch_size": 2, "per_device_eval_batch_size": 4, "report_to": ["tensorboard", "wandb"],
        "save_strategy": "no"}),
    "zephyr-7b-gemma/sft/config_full": ("sft", {
        "model_name_or_path": "google/gemma-7b", **BASE_7B, "chat_template": GEMMA_TEMPLATE,
        "dataset_mixture": mixture(pair("HuggingFaceH4/deita-10k-v0-sft", "train_sft", "test_sft"), 1000),
        "dataset_num_proc": 12, **SFT_COMMON,
        "dataset_kwargs": {"add_special_tokens": False, "append_concat_token": False},
        "gradient_accumulation_steps": 4, "hub_model_id": "zephyr-7b-gemma-sft", "learning_rate": 2.0e-05,
        "max_seq_length": 2048, "num_train_epochs": 3, "output_dir": "data/zephyr-7b-gemma-sft",
        "per_device_eval_batch_size": 4, "per_device_train_batch_size": 4, "report_to": ["tensorboard", "wandb"],
        "save_strategy": "no"}),
    "zephyr-7b-gemma/dpo/config_full": ("dpo", {
        "model_name_or_path": "HuggingFaceH4/zephyr-7b-gemma-sft-v0.1", "torch_dtype": "bfloat16",
        "dataset_mixture": mixture(pair("argilla/dpo-mix-7k", "train", "test"), 500, columns=PREFS),
        "dataset_num_proc": 12, **DPO_COMMON, "beta": 0.05, "gradient_accumulation_steps": 8,
        "hub_model_id": "zephyr-7b-gemma-dpo", "num_train_epochs": 2, "output_dir": "data/zephyr-7b-gemma-dpo",
        "per_device_train_batch_size": 2, "per_device_eval_batch_size": 4, "report_to": ["tensorboard", "wandb"],
        "save_strategy": "no"}),
    "smollm3/sft/mid": ("sft", {
        "model_name_or_path": "HuggingFaceTB/SmolLM3-3B-Base", "model_revision": "main", **SMOLLM3_COMMON,
        "chat_template": SMOLLM3_MID_TEMPLATE,
        "dataset_mixture": mixture([(SMOLTALK2, "Mid", "Llama_Nemotron_Post_Training_Dataset_reasoning_r1", 1.0),
                                    (SMOLTALK2, "Mid", "OpenThoughts3_1.2M", 1.0)]),
        "dataset_num_proc": 48, "eos_token": "<|im_end|>", "ddp_timeout": 14400, "output_dir": "data/SmolLM3-Mid",
        "learning_rate": 2.0e-05, "packing": True, "max_length": 32768, "max_steps": -1, "num_train_epochs": 5,
        "save_strategy": "steps", "save_steps": 0.05, "warmup_ratio": 0.03, "run_name": "smollm3-midtraining",
        "average_tokens_across_devices": True}),
    "smollm3/sft/sft": ("sft", {
        "model_name_or_path": "HuggingFaceTB/SmolLM3-3B-checkpoints", "model_revision": "it-mid-training",
        **SMOLLM3_COMMON, "chat_template": SMOLLM3_SFT_TEMPLATE,
        "dataset_mixture": mixture([(SMOLTALK2, "SFT", "smoltalk_smollm3_smol_magpie_ultra_no_think", 1.0),
                                    (SMOLTALK2, "SFT", "OpenThoughts3_1.2M_think", 0.02)], seed=0,
                                   columns=("messages", "chat_template_kwargs")),
        "dataset_num_proc": 12, "eos_token": "<|im_end|>", "assistant_only_loss": True, "ddp_timeout": 18000,
        "output_dir": "data/SmolLM3-SFT", "learning_rate": 2.0e-05, "packing": True, "packing_strategy": "ffd",
        "max_length": 65536, "max_steps": -1, "num_train_epochs": 5, "save_strategy": "epoch",
        "warmup_ratio": 0.03, "run_name": "smollm3-sft-training", "average_tokens_across_devices": True}),
    "smollm3/dpo/apo": ("dpo", {
        "model_name_or_path": "HuggingFaceTB/SmolLM3-3B-checkpoints", "model_revision": "it-SFT", **SMOLLM3_COMMON,
        "dataset_mixture": mixture([(SMOLTALK2, "Preference", "llama_3.1_tulu_3_8b_preference_mixture_no_think", 0.5),
                                    (SMOLTALK2, "Preference", "tulu_3_8b_pref_mix_Qwen3_32B_Qwen3_0.6B_think", 0.25)],
                                   seed=None, columns=("chosen", "rejected", "prompt", "chat_template_kwargs")),
        "dataset_num_proc": 12, "output_dir": "data/SmolLM3-DPO", "run_name": "SmolLM3-DPO",
        "learning_rate": 1.0e-06, "beta": 0.05, "loss_type": "apo_zero", "max_length": 24576, "num_train_epochs": 1,
        "padding_free": True, "save_strategy": "steps", "save_steps": 0.5, "warmup_ratio": 0.1}),
})

# recipes/gpt2-nl/cpt/config_full.yaml: continued pretraining of GPT-2 on Dutch mC4 (scripts/run_cpt.py, which
# reads `text_column`, default "text"; the recipe leaves it at that default)
RECIPES["gpt2-nl/cpt/config_full"] = ("cpt", {
    "model_name_or_path": "gpt2", "model_revision": "main", "torch_dtype": "bfloat16",
    "dataset_mixer": {"yhavinga/mc4_nl_cleaned": 1.0}, "dataset_splits": ["train"], "dataset_configs": ["tiny"],
    "preprocessing_num_workers": 12,
    "bf16": True, "do_eval": False, "eval_strategy": "no", "gradient_accumulation_steps": 1,
    "gradient_checkpointing": True, "gradient_checkpointing_kwargs": GC_KWARGS, "hub_model_id": "gpt2-cpt-dutch",
    "hub_strategy": "every_save", "learning_rate": 2.0e-04, "log_level": "info", "logging_steps": 5,
    "logging_strategy": "steps", "lr_scheduler_type": "cosine", "max_seq_length": 1024, "max_steps": -1,
    "num_train_epochs": 1, "output_dir": "data/gpt2-cpt-dutch", "overwrite_output_dir": True,
    "per_device_eval_batch_size": 8, "per_device_train_batch_size": 16, "push_to_hub": True,
    "remove_unused_columns": True, "report_to": ["wandb"], "save_strategy": "steps", "save_steps": 100,
    "save_total_limit": 1, "seed": 42, "warmup_ratio": 0.1})

# What a test may override on the command line: the model, the data, and the machine.
MODEL_KEYS = {"model_name_or_path", "model_revision"}
DATA_KEYS = {"dataset_mixture", "dataset_mixer", "dataset_name"}
HARDWARE_KEYS = {"bf16", "torch_dtype", "attn_implementation", "load_in_4bit", "use_liger_kernel", "padding_free",
                 "optim", "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                 "dataset_num_proc", "max_steps", "output_dir", "push_to_hub", "report_to"}
