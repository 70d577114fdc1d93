"""Training: recipes in, checkpoints out (TRL does the training).

    recipe.py     recipe YAML + command line -> TRL/transformers argument dataclasses
    data.py       local files or hub datasets -> validated chat / preference rows
    chat.py       chat templates (assistant-only loss, the plain fallback template)
    stage.py      one SFT or DPO run, start to finish
    sft.py dpo.py their commands
    demo_data.py  the CPU demo's data
"""
