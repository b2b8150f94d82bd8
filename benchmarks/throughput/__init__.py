"""bench-throughput: throughput, latency, codec limits, evaluator speed and memory, as ratios measured in one run.

One module per job: measure (timing, percentiles, peak memory), matmul (the machine's float32 MatMul rate),
codec (the decode/resize/encode limit), passthrough (an Identity translator artifact), models (generator
checkpoints and their ONNX exports), int8 (the INT8 artifact criterion E times), backends + sweep (engine-only
rates), baselines (the reference CycleGAN script's way and PyTorch eager batched), endtoend (batch-translate runs
and output comparison), official_eval (evaluate-seg against the official Cityscapes evaluator), memory (peak RSS
against dataset size), records and results (the typed measurements and stage results), criteria, plots, markdown
and report (report.md's sections, the report folder), and suite (which ties them together into the quick /
standard / full presets).
"""
