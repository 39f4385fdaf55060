# Cluster membership, quorum, flush, node status and resync
# (csrc/hammer2_quorum.c, csrc/hammer2_resync.c).

cdef extern from "hammer2_cluster.h" nogil:
    ctypedef struct hammer2_node_t:
        int state
        int error
        uint64_t read_errors
        char why[192]

    ctypedef struct hammer2_resync_stats_t:
        uint64_t visited
        uint64_t skipped
        uint64_t copied
        uint64_t deleted
        uint64_t bytes

    int hammer2_cluster_join(hammer2_dev_t **devs, int ndevs)
    int hammer2_cluster_writable(hammer2_dev_t **devs, int ndevs)
    int hammer2_cluster_flush(hammer2_dev_t **devs, int ndevs)
    void hammer2_node_get(hammer2_dev_t *hmp, hammer2_node_t *node)
    uint64_t hammer2_node_tid(const hammer2_dev_t *hmp)
    int hammer2_cluster_resync(hammer2_dev_t **devs, int ndevs, int dst_index,
                               hammer2_resync_stats_t *stats)

MAX_NODES = MAXNODES
NODE_STATES = ("live", "stale", "failed")


cdef int _cluster_writable(hammer2_dev_t **devs, int n) except -1:
    """Writes need a quorum of live nodes (EROFS naming it otherwise)."""
    cdef int err
    with nogil:
        err = hammer2_cluster_writable(devs, n)
    if err:
        raise _error(err)
    return 0


def cluster_join(list devices):
    """Classify the nodes: live (at the quorum's transaction), stale, failed."""
    cdef hammer2_dev_t *devs[MAXNODES]
    cdef int n = _devs(devices, devs)
    cdef int err, i
    with nogil:
        for i in range(n):
            hammer2_trans_begin(devs[i], 1)
        err = hammer2_cluster_join(devs, n)
        for i in range(n):
            hammer2_trans_end(devs[i])
    if err:
        raise _error(err)


def cluster_flush(list devices):
    """Commit every live node; H2Error unless a quorum committed."""
    cdef hammer2_dev_t *devs[MAXNODES]
    cdef int n = _devs(devices, devs, True)
    cdef int err, i
    with nogil:
        for i in range(n):
            hammer2_trans_begin(devs[i], 1)
        err = hammer2_cluster_flush(devs, n)
        for i in range(n):
            hammer2_trans_end(devs[i])
    if err:
        raise _error(err)


def node_status(Device device):
    """A node's standing in its cluster."""
    cdef hammer2_dev_t *hmp = device._dev()
    cdef hammer2_node_t node
    hammer2_node_get(hmp, &node)
    return {'path': _text(hmp.path), 'state': NODE_STATES[node.state],
            'errno': node.error, 'why': _text(node.why),
            'read_errors': node.read_errors,
            'mirror_tid': hammer2_node_tid(hmp)}


def resync(list devices, int index):
    """Bring node `index` (stale) back: commit the live nodes, copy from the
    first of them only what changed since the node's last transaction,
    rejoin it.  Returns the counts."""
    cdef hammer2_dev_t *devs[MAXNODES]
    cdef int n = _devs(devices, devs, True)
    cdef hammer2_resync_stats_t st
    cdef int err, i
    memset(&st, 0, sizeof(st))
    with nogil:
        for i in range(n):
            hammer2_trans_begin(devs[i], 1)
        err = hammer2_cluster_resync(devs, n, index, &st)
        for i in range(n):
            hammer2_trans_end(devs[i])
    if err:
        raise _error(err)
    return {'visited': st.visited, 'skipped': st.skipped, 'copied': st.copied,
            'deleted': st.deleted, 'bytes': st.bytes}
