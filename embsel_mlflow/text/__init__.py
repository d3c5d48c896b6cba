"""Text statistics shared by ``profile`` and ``monitor``: token counts per candidate tokenizer,
near-duplicates (MinHash), languages and scripts, length summaries."""
