# Device backends (csrc/hammer2_backend.h): memory devices for tests, and
# the DIO layer's batched asynchronous reads.

cdef extern from "hammer2_backend.h" nogil:
    int hammer2_mem_create(const char *name, uint64_t size)
    int hammer2_mem_delete(const char *name)


def mem_create(str name, uint64_t size):
    """Create the memory device `mem:NAME` (zeroed, `size` bytes)."""
    cdef bytes bname = name.encode()
    cdef const char *cname = bname
    cdef int err
    with nogil:
        err = hammer2_mem_create(cname, size)
    if err:
        raise _error(err)


def mem_delete(str name):
    """Forget `mem:NAME`; its memory goes when the last open of it closes."""
    cdef bytes bname = name.encode()
    cdef const char *cname = bname
    cdef int err
    with nogil:
        err = hammer2_mem_delete(cname)
    if err:
        raise _error(err)
