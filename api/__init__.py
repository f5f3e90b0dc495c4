"""The HTTP facade: PDFs and images in over HTTP, Markdown and layout JSON out, through the Triton client."""
