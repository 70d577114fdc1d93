"""Supervised fine-tuning: recipe -> TRL SFTTrainer -> checkpoint with chat template and run card.

    python -m align.sft --config recipes/sft/ultrachat.yaml --model_name_or_path CKPT --output_dir DIR
    accelerate launch --config_file recipes/accelerate/zero3.yaml -m align.sft --config ... [--key value ...]

The dataset is chat rows (`messages`); with `assistant_only_loss: true` (the study's setting)
only assistant tokens are trained. TRL does the tokenizing, collating and training.
"""

from __future__ import annotations

import logging
import sys

from align.common import exit_on_user_error
from align import train_common as tc

log = logging.getLogger("align")


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    from trl import SFTConfig

    from align.recipe import parse_recipe

    argv = tc.cpu_distributed_argv(list(sys.argv[1:] if argv is None else argv))
    data_args, training_args, model_args, run_args, resolved = parse_recipe(SFTConfig, argv)
    started = tc.now()
    tc.setup_logging(training_args)
    resume = tc.prepare_run(training_args, run_args)
    peft_config, quantization_config = tc.peft_and_quantization(model_args)

    # Data first: a bad row fails the run before the model is loaded.
    from align.data import load_rows

    train = load_rows(data_args.dataset_name, kind="chat", config=data_args.dataset_config,
                      split=data_args.dataset_train_split, max_rows=data_args.max_train_rows,
                      invalid_rows=data_args.invalid_rows)
    cards = {"train": train.card()}
    eval_dataset = None
    if training_args.eval_strategy != "no":
        evaluation = load_rows(data_args.dataset_name, kind="chat", config=data_args.dataset_config,
                               split=data_args.dataset_test_split, invalid_rows=data_args.invalid_rows)
        eval_dataset, cards["eval"] = evaluation.dataset, evaluation.card()

    tokenizer = tc.load_tokenizer(model_args, training_args, assistant_only_loss=training_args.assistant_only_loss,
                                  chat_template_path=training_args.chat_template_path)
    training_args.chat_template_path = None  # applied above (to the tokenizer that gets saved)
    tc.model_init_kwargs(training_args, model_args)

    from trl import SFTTrainer

    trainer = SFTTrainer(model=model_args.model_name_or_path, args=training_args, train_dataset=train.dataset,
                         eval_dataset=eval_dataset, processing_class=tokenizer, peft_config=peft_config,
                         quantization_config=quantization_config)
    log.info("SFT: %d rows (%d skipped as invalid), %s", train.rows_kept, train.rows_skipped,
             "resuming " + resume if resume else "fresh start")
    trainer.train(resume_from_checkpoint=resume)
    tc.save_outputs(trainer, tokenizer, model_args, training_args)
    tc.finish_run(trainer, stage="sft", started=started, resolved=resolved, data_cards=cards,
                  model_args=model_args, training_args=training_args,
                  extra={"resumed_from": resume, "chat_template": tokenizer.chat_template})
    trainer.accelerator.wait_for_everyone()
    return 0


if __name__ == "__main__":
    sys.exit(main())
