"""Building templates from package lists (vzpkg create cache), outside the host lock."""
