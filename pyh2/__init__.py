"""pyh2: DragonFly BSD's HAMMER2 core in userspace, driven from Python."""
from .volume import CheckError, DirEntry, H2Error, Pfs, PfsInfo, Stat, Volume, open

__all__ = ["open", "Volume", "Pfs", "PfsInfo", "Stat", "DirEntry", "H2Error", "CheckError"]
