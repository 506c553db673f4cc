"""Auto-Correct (CLEAR + RobustFT): propose a better response for low-confidence rows, and judge it.

* `candidates`: where candidates come from (in-context examples, the dataset classifier, a fine-tuned model) and
  `propose_batch`, which generates and judges one batch;
* `judging`: the judges (the LLM in both orders, the out-of-fold classifier, the scorer's margin from `scorer`),
  pooled in log-odds;
* `acceptance`: the acceptance rule, fitted label-free on synthetic rows (corrupted kept rows and controls): the
  pooled judge's threshold whose synthetic proposals restore their row at a rate >= eta; the stored judge_conf
  is on its scale, so a proposal is `confident` when judge_conf >= eta;
* `relabel`: confident-learning relabels of categorical rows (the classifier sure, the LLM judge not against);
* `run`: the correction run over a finished scoring run's rows below t_keep, resumable like a scoring run.
The names below are the package's interface: `from clear_core.correct import run_correction, judge, ...`.
"""

from ..chat import model_text as prompt_as_text
from .candidates import MAX_EXAMPLE_CHARS, clean_candidate, icl_messages, nearest_examples, propose_batch, same_answer
from .acceptance import AcceptanceRule
from .judging import (JUDGE_LETTERS, JUDGE_SIGNALS, JUDGE_TEMPLATE, POOL_EPS, STORED_SIGNALS, categorical_data_judge,
                      dataset_judge, judge, judge_confidence, judge_prompts, judge_scores, pool_judges)
from .run import JUDGE_METHOD, PROPOSE, resume, run_correction, target_rows

__all__ = ["AcceptanceRule", "STORED_SIGNALS", "JUDGE_LETTERS", "JUDGE_METHOD", "JUDGE_SIGNALS", "JUDGE_TEMPLATE", "MAX_EXAMPLE_CHARS", "POOL_EPS",
           "PROPOSE", "categorical_data_judge", "clean_candidate", "dataset_judge", "icl_messages", "judge",
           "judge_confidence", "judge_prompts", "judge_scores", "nearest_examples", "pool_judges", "prompt_as_text",
           "propose_batch", "resume", "run_correction", "same_answer", "target_rows"]
