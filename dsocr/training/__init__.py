"""Fine-tuning DeepSeek-OCR on pages with ground truth: ``dsocr train`` and the tiny reader's recipe."""
