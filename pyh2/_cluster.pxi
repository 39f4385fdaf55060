# Cluster membership, quorum, flush, node status and resync
# (csrc/hammer2_quorum.c, csrc/hammer2_resync.c).

cdef extern from "hammer2_cluster.h" nogil:
    ctypedef struct hammer2_node_t:
        int state
        int error
        uint64_t read_errors
        uint64_t healed
        uint64_t encodes_copied
        char why[192]

    ctypedef struct hammer2_resync_lost_t:
        char pfs[256]
        uint64_t inum
        uint64_t key
        uint8_t type
        uint64_t off

    int HAMMER2_RESYNC_LOST_MAX

    ctypedef struct hammer2_resync_stats_t:
        hammer2_resync_lost_t lost[16]
        uint64_t visited
        uint64_t skipped
        uint64_t copied
        uint64_t deleted
        uint64_t bytes
        uint64_t repaired
        uint64_t unreadable
        uint64_t missing

    ctypedef struct hammer2_scan_elem_t:
        uint8_t type
        uint8_t keybits
        uint64_t key
        uint64_t modify_tid
        uint64_t data_off
        int radix
        uint32_t nodes
        int focus
        int modified
        int parent_ok

    ctypedef int (*hammer2_scan_cb_t)(void *arg, const hammer2_scan_elem_t *el)
    int hammer2_cluster_scan_inode(hammer2_pfs_t *pfs, uint64_t inum,
                                   hammer2_scan_cb_t cb, void *arg)
    int hammer2_cluster_join(hammer2_dev_t **devs, int ndevs)
    void hammer2_heal_forget(hammer2_dev_t **devs, int ndevs)
    int hammer2_cluster_writable(hammer2_dev_t **devs, int ndevs)
    int hammer2_cluster_flush(hammer2_dev_t **devs, int ndevs)
    int hammer2_cluster_bulkfree(hammer2_dev_t **devs, int ndevs, uint64_t *freedp)
    int hammer2_pfs_node_swap(hammer2_pfs_t *pfs, int index, hammer2_dev_t *hmp)
    void hammer2_pfs_revalidate(hammer2_pfs_t *pfs)
    void hammer2_node_get(hammer2_dev_t *hmp, hammer2_node_t *node)
    uint64_t hammer2_node_tid(const hammer2_dev_t *hmp)
    int hammer2_cluster_resync(hammer2_dev_t **devs, int ndevs, int dst_index,
                               int src_index, int flags, hammer2_resync_stats_t *stats)

    ctypedef struct hammer2_sync_status_t:
        int running
        int paused
        int passes
        int error
        uint64_t syncs
        uint64_t done_elems
        uint64_t done_bytes
        uint64_t total_elems
        uint64_t total_bytes
        char last_error[192]

    int hammer2_nodeset_create(hammer2_dev_t **devs, int ndevs, int autosync,
                               int retry_max_ms, hammer2_nodeset_t **nsp)
    void hammer2_nodeset_destroy(hammer2_nodeset_t *ns)
    void hammer2_nodeset_hold(hammer2_nodeset_t *ns)
    void hammer2_nodeset_release(hammer2_nodeset_t *ns)
    void hammer2_nodeset_begin(hammer2_nodeset_t *ns, int write)
    void hammer2_nodeset_end(hammer2_nodeset_t *ns)
    int hammer2_nodeset_reopen(hammer2_nodeset_t *ns, int index)
    int hammer2_nodeset_resync(hammer2_nodeset_t *ns, int index, int flags,
                               hammer2_resync_stats_t *stats)
    void hammer2_nodeset_sync_status(hammer2_nodeset_t *ns, int index,
                                     hammer2_sync_status_t *st)
    void hammer2_nodeset_sync_pause(hammer2_nodeset_t *ns, int index, long long elems)
    int hammer2_nodeset_sync_paused(hammer2_nodeset_t *ns, int index, int timeout_ms)

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
    """Commit every live node; H2Error unless a quorum committed (nothing
    pending is no error, even below quorum)."""
    cdef hammer2_dev_t *devs[MAXNODES]
    cdef int n = _devs(devices, devs)
    cdef int err, i
    for d in devices:
        (<Device>d)._wdev()
    with nogil:
        for i in range(n):
            hammer2_trans_begin(devs[i], 1)
        err = hammer2_cluster_flush(devs, n)
        for i in range(n):
            hammer2_trans_end(devs[i])
    if err:
        raise _error(err)



def cluster_bulkfree(list devices):
    """bulkfree on every live node (stale ones keep their transaction for the
    resync); the bytes freed.  H2Error unless a quorum did it."""
    cdef hammer2_dev_t *devs[MAXNODES]
    cdef int n = _devs(devices, devs)
    cdef uint64_t freed = 0
    cdef int err, i
    for d in devices:
        (<Device>d)._wdev()
    with nogil:
        for i in range(n):
            hammer2_trans_begin(devs[i], 1)
        err = hammer2_cluster_bulkfree(devs, n, &freed)
        for i in range(n):
            hammer2_trans_end(devs[i])
    if err:
        raise _error(err)
    return freed

def node_status(Device device):
    """A node's standing in its cluster."""
    cdef hammer2_dev_t *hmp = device._dev()
    cdef hammer2_node_t node
    hammer2_node_get(hmp, &node)
    return {'path': _text(hmp.path), 'state': NODE_STATES[node.state],
            'errno': node.error, 'why': _text(node.why),
            'read_errors': node.read_errors, 'healed': node.healed,
            'encodes_copied': node.encodes_copied,
            'mirror_tid': hammer2_node_tid(hmp)}


def cluster_forget_heals(list devices):
    """Drop the rewrites the nodes have noted for their next commit (they
    hold chains of every node): before any node is closed."""
    cdef hammer2_dev_t *devs[MAXNODES]
    cdef int n = 0, i
    for d in devices[:MAXNODES]:
        if (<Device>d).hmp is not NULL:
            devs[n] = (<Device>d).hmp
            n += 1
    with nogil:
        for i in range(n):
            hammer2_trans_begin(devs[i], 1)
        hammer2_heal_forget(devs, n)
        for i in range(n):
            hammer2_trans_end(devs[i])


def resync(list devices, int index, bint scrub=False, int source=-1):
    """Bring node `index` (stale) back: commit the live nodes, copy from
    live node `source` (-1: the first) only what changed since the node's
    last transaction,
    rejoin it.  What the node cannot read is replaced from any live node
    that can serve it.  scrub: also read back everything it holds (a live
    node is taken out meanwhile).  Returns the counts, and in 'lost' the
    first elements no node could read."""
    cdef hammer2_dev_t *devs[MAXNODES]
    cdef int n = _devs(devices, devs, True)
    cdef hammer2_resync_stats_t st
    cdef list users = list({u for d in devices for u in (<Device>d).users})
    cdef hammer2_pfs_t **pfss = <hammer2_pfs_t **>malloc((len(users) + 1) *
                                                         sizeof(hammer2_pfs_t *))
    cdef int npfs = len(users), err, i
    if pfss is NULL:
        raise MemoryError("resync")
    memset(&st, 0, sizeof(st))
    try:
        for i in range(npfs):
            pfss[i] = (<Pfs>users[i])._pfs()
        with nogil:
            for i in range(n):
                hammer2_trans_begin(devs[i], 1)
            err = hammer2_cluster_resync(devs, n, index, source, 1 if scrub else 0, &st)
            for i in range(npfs):           # open PFSes see the node again
                if err == 0:
                    hammer2_pfs_revalidate(pfss[i])
            for i in range(n):
                hammer2_trans_end(devs[i])
    finally:
        free(pfss)
    if err:
        raise _error(err)
    return _resync_stats(&st)


cdef dict _resync_stats(hammer2_resync_stats_t *st):
    return {'visited': st.visited, 'skipped': st.skipped, 'copied': st.copied,
            'deleted': st.deleted, 'bytes': st.bytes, 'repaired': st.repaired,
            'unreadable': st.unreadable, 'missing': st.missing,
            'lost': [{'pfs': _text(st.lost[i].pfs), 'inum': st.lost[i].inum,
                      'key': st.lost[i].key,
                      'type': _text(hammer2_bref_type_name(st.lost[i].type)),
                      'off': st.lost[i].off}
                     for i in range(min(st.unreadable, HAMMER2_RESYNC_LOST_MAX))]}


cdef int _scan_cb(void *arg, const hammer2_scan_elem_t *el) noexcept with gil:
    (<list>arg).append({
        'type': _text(hammer2_bref_type_name(el.type)), 'key': el.key,
        'keybits': el.keybits, 'modify_tid': el.modify_tid,
        'data_off': el.data_off, 'bytes': (1 << el.radix) if el.radix else 0,
        'nodes': [i for i in range(MAXNODES) if el.nodes & (1 << i)],
        'focus': el.focus, 'modified': bool(el.modified),
        'parent_ok': bool(el.parent_ok)})
    return 0


def cluster_scan(Pfs pfs, uint64_t inum):
    """The raw elements directly under inode inum (indirect blocks not
    descended), each with the nodes holding it."""
    cdef hammer2_pfs_t *p = pfs._pfs()
    cdef list out = []
    cdef int err
    with nogil:
        hammer2_pfs_trans_begin(p, 0)
        err = hammer2_cluster_scan_inode(p, inum, _scan_cb, <void *>out)
        hammer2_pfs_trans_end(p)
    if err:
        raise _error(err)
    return out


def node_swap(list devices, int index, Device fresh):
    """Replace node `index` of an open cluster by `fresh` (a new open of the
    same media): every PFS open over the cluster is pointed at it, under
    every node's transaction lock; the old device is closed and `fresh`
    takes its place in `devices`."""
    cdef hammer2_dev_t *devs[MAXNODES]
    cdef int n = _devs(devices, devs)
    cdef hammer2_dev_t *hmp = fresh._dev()
    cdef Device old = <Device>devices[index]
    cdef list users = list(old.users)
    cdef hammer2_pfs_t **pfss = <hammer2_pfs_t **>malloc((len(users) + 1) *
                                                         sizeof(hammer2_pfs_t *))
    cdef int npfs = len(users), err = 0, i
    if pfss is NULL:
        raise MemoryError("node swap")
    try:
        for i in range(npfs):
            pfss[i] = (<Pfs>users[i])._pfs()
        with nogil:
            for i in range(n):
                hammer2_trans_begin(devs[i], 1)
            hammer2_heal_forget(devs, n)        # they hold the old node's chains
            for i in range(npfs):
                err = hammer2_pfs_node_swap(pfss[i], index, hmp)
                if err:
                    break
            for i in range(n):
                hammer2_trans_end(devs[i])
    finally:
        free(pfss)
    if err:
        raise _error(err)
    for u in users:
        old.users.discard(u)
        fresh.users.add(u)
    devices[index] = fresh
    old.close()


cdef class NodeSet:
    """The node list of an open cluster, its lock and its sync threads, in
    the core (csrc/hammer2_nodeset.c): it takes the devices over (they
    become views of their nodes, which the core may reopen) and runs every
    cluster operation under its lock.  autosync: a thread per node brings
    it back whenever it leaves the cluster, retrying one that cannot come
    back after 250 ms, doubling up to retry_max_ms."""
    cdef hammer2_nodeset_t *ns
    cdef list views

    def __cinit__(self, list devices, bint autosync=True, int retry_max_ms=10000):
        cdef hammer2_dev_t *devs[MAXNODES]
        cdef int n = _devs(devices, devs)
        cdef int err
        with nogil:
            err = hammer2_nodeset_create(devs, n, autosync, retry_max_ms, &self.ns)
        if err:
            raise _error(err)
        for i, d in enumerate(devices):
            (<Device>d).ns = self.ns
            (<Device>d).index = i
            (<Device>d).hmp = NULL
        self.views = list(devices)

    def __dealloc__(self):
        if self.ns is not NULL:
            hammer2_nodeset_destroy(self.ns)

    def close(self):
        """Close the PFSes over the nodes, stop the sync threads, close
        every device."""
        for d in self.views:
            d.close()
        if self.ns is not NULL:
            with nogil:
                hammer2_nodeset_destroy(self.ns)
            self.ns = NULL

    def __enter__(self):
        """The node-list lock (it nests), for a run of calls that hand the
        node list to the core: no node is reopened meanwhile."""
        cdef hammer2_nodeset_t *ns = self._ns()
        with nogil:
            hammer2_nodeset_hold(ns)
        return self

    def __exit__(self, *exc):
        hammer2_nodeset_release(self.ns)

    cdef hammer2_nodeset_t *_ns(self) except NULL:
        if self.ns is NULL:
            raise H2Error(_errno.EBADF, "cluster is closed")
        return self.ns

    cdef int _writable(self) except -1:
        cdef hammer2_nodeset_t *ns = self._ns()
        for i in range(ns.ndevs):
            if ns.devs[i].readonly:
                raise H2Error(_errno.EROFS, f"{_text(ns.devs[i].path)} is open read-only")
        return 0

    def flush(self):
        """Commit every live node; H2Error unless a quorum committed."""
        cdef hammer2_nodeset_t *ns = self._ns()
        cdef int err
        self._writable()
        with nogil:
            hammer2_nodeset_begin(ns, 1)
            err = hammer2_cluster_flush(ns.devs, ns.ndevs)
            hammer2_nodeset_end(ns)
        if err:
            raise _error(err)

    def bulkfree(self):
        """bulkfree on every live node; the bytes freed."""
        cdef hammer2_nodeset_t *ns = self._ns()
        cdef uint64_t freed = 0
        cdef int err
        self._writable()
        with nogil:
            hammer2_nodeset_begin(ns, 1)
            err = hammer2_cluster_bulkfree(ns.devs, ns.ndevs, &freed)
            hammer2_nodeset_end(ns)
        if err:
            raise _error(err)
        return freed

    def reopen(self, int index):
        """Replace node `index` by a fresh open of its media (in every open
        PFS); it comes back stale."""
        cdef hammer2_nodeset_t *ns = self._ns()
        cdef int err
        with nogil:
            err = hammer2_nodeset_reopen(ns, index)
        if err:
            raise _error(err)

    def resync(self, int index, bint scrub=False):
        """Bring node `index` back now (reopened first if failed), each
        element from the first live node serving it; scrub: read back
        everything it holds, healing what fails.  Returns the counts."""
        cdef hammer2_nodeset_t *ns = self._ns()
        cdef hammer2_resync_stats_t *st
        cdef int err
        self._writable()
        st = <hammer2_resync_stats_t *>calloc(1, sizeof(hammer2_resync_stats_t))
        if st is NULL:
            raise MemoryError("resync")
        try:
            with nogil:
                err = hammer2_nodeset_resync(ns, index, 1 if scrub else 0, st)
            if err:
                raise _error(err)
            return _resync_stats(st)
        finally:
            free(st)

    def sync_pause(self, int index, long long elems):
        """Node `index`'s resyncs stop once they copied `elems` elements
        (-1: never) and wait, holding no lock, until called again (for
        tests: writes land between a resync's passes)."""
        cdef hammer2_nodeset_t *ns = self._ns()
        with nogil:
            hammer2_nodeset_sync_pause(ns, index, elems)

    def sync_paused(self, int index, double timeout=60.0):
        """Wait up to `timeout` seconds for node `index`'s resync to pause;
        whether it did."""
        cdef hammer2_nodeset_t *ns = self._ns()
        cdef int ms = int(timeout * 1000), paused
        with nogil:
            paused = hammer2_nodeset_sync_paused(ns, index, ms)
        return bool(paused)

    def status(self, int index):
        """node_status() of node `index` and its sync thread's: 'sync'
        (running, syncs, done and total elements/bytes, last_error)."""
        cdef hammer2_nodeset_t *ns = self._ns()
        cdef hammer2_sync_status_t ss
        out = node_status(self.views[index])
        hammer2_nodeset_sync_status(ns, index, &ss)
        out['sync'] = {'running': bool(ss.running), 'paused': bool(ss.paused),
                       'passes': ss.passes, 'syncs': ss.syncs,
                       'done_elems': ss.done_elems, 'done_bytes': ss.done_bytes,
                       'left_elems': max(<long long>ss.total_elems -
                                         <long long>ss.done_elems, 0) if ss.running else 0,
                       'left_bytes': max(<long long>ss.total_bytes -
                                         <long long>ss.done_bytes, 0) if ss.running else 0,
                       'last_error': _text(ss.last_error)}
        return out
