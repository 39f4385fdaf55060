"""The one exception a torture run raises on a divergence."""


class TortureFailure(Exception):
    """kind: 'model' (tree differs), 'errno' (wrong error), 'crash' (a crash image), 'fsck',
    'exception' (the core raised unexpectedly), 'cluster'; index: the failing op's position."""

    def __init__(self, kind: str, detail: str, index: int | None = None):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail, self.index = kind, detail, index
