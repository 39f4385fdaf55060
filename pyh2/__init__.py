"""pyh2: DragonFly BSD's HAMMER2 core in userspace, driven from Python."""
from .volume import CheckError, DirEntry, H2Error, Pfs, PfsInfo, Stat, Volume, newfs, open

__all__ = ["open", "newfs", "Volume", "Pfs", "PfsInfo", "Stat", "DirEntry", "H2Error",
           "CheckError"]
