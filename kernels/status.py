"""Status codes shared by the kernels and the front end.

Negative codes are failures reported to the user; positive codes are internal requests
from a kernel to its driver (grow a buffer and call again) and never reach a result.

Below are the layouts of the records the kernels read and write. Build the records with
:mod:`records` (``float_options``, ``int_options``, ``float_state``, ``int_state``), never by
hand: it fills every entry by keyword, so a record cannot be short.
"""

SUCCESS = 0
MAX_STEPS = -1
STEP_TOO_SMALL = -2
NON_FINITE = -3
#: the iteration matrix ``I/(h*gamma) - J`` of a Rosenbrock method stayed singular
SINGULAR_MATRIX = -4
#: the Jacobian ``df/dy`` (or ``df/dt``) had a NaN or inf entry
JACOBIAN_NON_FINITE = -5
#: the model raised an exception inside compiled code (set by the front end, which sees
#: it through ``sys.unraisablehook``; a kernel cannot)
MODEL_EXCEPTION = -6

#: the every-step output buffer is full: the driver grows it and resumes the kernel
OUTPUT_FULL = 1
#: the dense-output store is full: the driver grows it and resumes the kernel
DENSE_FULL = 2
#: ``method="auto"``: the explicit method found the problem stiff; switch to a stiff method
SWITCH_TO_STIFF = 3
#: ``method="auto"``: the stiff method found the problem no longer stiff; switch back
SWITCH_TO_NONSTIFF = 4

# Layout of the integer state record (``istate``) every integrator shares.
I_STATUS = 0
I_N_OUT = 1
I_N_ACCEPTED = 2
I_N_REJECTED = 3
I_NFEV = 4
I_STARTED = 5
I_K0_VALID = 6
I_N_DENSE = 7
I_STIFF_COUNT = 8
I_NONSTIFF_COUNT = 9
I_LAST_REJECT_NONFINITE = 10
I_PREVIOUS_REJECTED = 11
I_STIFFNESS_DETECTED = 12
I_NJEV = 13
I_NLU = 14
I_SIZE = 15

# Layout of the float state record (``fstate``).
F_T = 0
F_H = 1
F_ERR_PREVIOUS = 2
F_T_STIFF = 3
F_SIZE = 4

# Layout of the float options record (``fopts``).
O_T0 = 0
O_T_END = 1
O_RTOL = 2
O_FIRST_STEP = 3
O_MAX_STEP = 4
O_DT = 5
O_SIZE = 6

# Layout of the integer options record (``iopts``).
IO_MAX_STEPS = 0
IO_SAVE_EVERY_STEP = 1
IO_STORE_DENSE = 2
#: ``method="auto"``: return ``SWITCH_TO_STIFF`` / ``SWITCH_TO_NONSTIFF`` when the
#: stiffness test says so, instead of carrying on
IO_SWITCH = 3
#: how a Rosenbrock method gets ``df/dy``: ``JAC_*`` below
IO_JAC_MODE = 4
#: how a Rosenbrock method gets ``df/dt``: ``TIME_DERIVATIVE_*`` below
IO_TIME_MODE = 5
IO_SIZE = 6

# ``IO_JAC_MODE`` values
JAC_COMPLEX_STEP = 0
JAC_USER = 1
JAC_CENTRAL = 2

# ``IO_TIME_MODE`` values
TIME_DERIVATIVE_COMPLEX_STEP = 0
TIME_DERIVATIVE_CENTRAL = 1
#: the model never reads ``t``: ``df/dt`` is exactly zero
TIME_DERIVATIVE_ZERO = 2
