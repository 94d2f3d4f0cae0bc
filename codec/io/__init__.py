"""Files the codec reads and writes: videos and PNG folders, and atomic writes of files and
folders (the project's one writer)."""
