"""Helpers for test suites of HAMMER2 volumes; none imports pytest.

`plugin` is the pytest plugin (entry point pytest11) holding the fixtures built on them;
`devices`: image files, memory and loop devices, nbdkit/qemu-nbd servers, kernel NBD
attachments; `fusemount`: a `pyh2 mount -d` that is always unmounted; `cli`: the CLI run in a
child; `nodes`: a cluster's node images checked one by one; `fuzz` and `imagepatch`:
hostile images, bytes patched on media with every check code recomputed.
"""
