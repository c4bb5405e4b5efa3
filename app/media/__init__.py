"""Media: image processing in a process pool, filters, previews, and the media stores."""
