"""Answer generation backends: hf (in-process, batched), openai (any compatible server), vllm."""
