"""pyh2: DragonFly BSD's HAMMER2 core in userspace, driven from Python."""
from .cluster import ClusterVolume, newfs_cluster, open_cluster
from .volume import CheckError, DirEntry, H2Error, Pfs, PfsInfo, Stat, Volume, newfs, open

__version__ = "0.1.0"

__all__ = ["open", "newfs", "open_cluster", "newfs_cluster", "ClusterVolume", "Volume", "Pfs", "PfsInfo", "Stat", "DirEntry", "H2Error",
           "CheckError"]
