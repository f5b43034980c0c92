"""The prompt optimizer: learn a step's instructions and demonstrations from scored examples.

``scoring``         the metrics a step names (exact, contains, regex, ..., llm_judge)
``language_model``  ``gateway_lm``: a DSPy LM whose every call goes through the gateway
``program``         ``StepProgram``: one LLM step of a pipeline as a DSPy program; ``Example``
``compiler``        ``compile_step``, ``promote``, ``split``: run an optimizer, judge its result
``writeback``       write a promoted prompt into the pipeline's YAML as a minimal diff
``versions``        every optimized version of a pipeline, with rollback

Importing this package (or ``scoring``, ``compiler``'s pure helpers) never imports DSPy;
DSPy is imported on first use, inside the optimizer's own thread.
"""
