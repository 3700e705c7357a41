"""``python -m dashscope_embeddings.cli``: the same as the ``dashscope-embeddings`` command."""

import sys

from dashscope_embeddings.cli import main

if __name__ == "__main__":
    sys.exit(main())
