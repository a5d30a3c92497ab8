"""Optimizers and learning-rate schedules with PyTorch's names and update rules.

    from tinytensor.optim import AdamW
    from tinytensor.optim.lr_scheduler import WarmupCosineLR
    decay = [p for p in params if p.ndim >= 2]; no_decay = [p for p in params if p.ndim < 2]
    opt = AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=3e-4)
    sched = WarmupCosineLR(opt, warmup_steps=100, decay_steps=5000, min_lr=3e-5)
    for batch in batches:
        loss = model_loss(batch); loss.backward()
        opt.step(); opt.zero_grad(); sched.step()

Gradient accumulation over micro-batches: `backward()` adds into each parameter's `.grad` (the engine accumulates
across backward calls; nothing resets it but `zero_grad()`). To train on a batch too big for memory, split it into k
micro-batches, call `(loss_i / k).backward()` for each, then one `opt.step(); opt.zero_grad()`: the summed gradient
equals the gradient of the whole batch's mean loss, so the update is the same (tests/test_optim.py shows it).

Optimizers update `param.data` in place from `param.grad.data`, on the parameter's own device and in its dtype;
`state_dict()`/`load_state_dict()` use PyTorch's layout and `tinytensor.io.save_checkpoint` stores them.
"""
from tinytensor.optim import lr_scheduler
from tinytensor.optim.adagrad import Adagrad
from tinytensor.optim.adam import Adam, AdamW
from tinytensor.optim.optimizer import Optimizer
from tinytensor.optim.rmsprop import RMSprop
from tinytensor.optim.sgd import SGD

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "RMSprop", "Optimizer", "lr_scheduler"]
