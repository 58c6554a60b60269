"""Selah's model core: what the service (`app`) and the training stages (`training`) both mean by
"the model".

The label schema and score bands (`schema`), the checkpoint format (`checkpoint`), the student and
its featurizer (`student`), the INT8 layers (`int8`, `int8_experts`), the gpt-oss backbone
(`gptoss`) and its chat rendering (`chat`), the one inference path (`inference`), scripture
lookup (`scripture`), reading a served model's token logprobs (`logprobs`), and small shared
helpers (`files`, `runtime`, `deps`).

It imports neither `app` nor `training` (a test checks): arrows point into this package, never
out of it. Named after the distribution so it cannot clash with a host project's `app`,
`training` or `core`. `import selah` itself loads nothing heavy; torch is imported by the modules
that need it.
"""
