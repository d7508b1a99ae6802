"""Infrastructure every layer uses: errors, atomic storage, caches, parallel maps, paths, labels."""
