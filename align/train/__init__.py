"""Training: recipes in, checkpoints out (TRL does the training).

    kinds.py      SFT, CPT, DPO: each kind's config, trainer, rows and hooks (what the kinds do differently)
    recipe.py     recipe YAML + command line -> TRL/transformers argument dataclasses
    data.py       local files or hub datasets -> validated chat / preference / text rows
    chat.py       chat templates (assistant-only loss, the plain fallback template)
    tokenizer.py  the checkpoint's tokenizer a run trains with
    stage.py      one training run, start to finish, the same for every kind
    sft.py dpo.py cpt.py   their commands (make_parser + main); cpt_config.py, cpt_parts.py: CPT's config and parts
    demo_data.py  the CPU demo's data
"""
