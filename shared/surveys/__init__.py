"""Surveys and interviews: questions, distribution, answering, results, profile enrichment."""
