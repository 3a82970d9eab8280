"""Test helpers shared by fundl's own tests and by anyone writing a new op or layer."""
from .gradcheck import gradcheck

__all__ = ["gradcheck"]
from .op_case import assert_error, check_op, compare_with_gpu

__all__ += ["assert_error", "check_op", "compare_with_gpu"]
