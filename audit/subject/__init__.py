"""A case made ready to probe: the model loaded, the rows read and shaped for its inputs.

`load_subject` is the one way in; the modules beside it each do one part of it (inputs,
classes, the training config the model was compiled with, label checks).
"""

from audit.subject.assemble import Subject, SubjectError, infer_task, load_subject

__all__ = ["Subject", "SubjectError", "infer_task", "load_subject"]
