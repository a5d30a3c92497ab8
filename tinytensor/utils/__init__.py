"""`tinytensor.utils`: `data` holds Dataset, TensorDataset, DataLoader and random_split, as torch.utils.data."""
from tinytensor.utils import data

__all__ = ["data"]
