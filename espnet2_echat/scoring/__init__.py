"""Scoring of decoded sets: WER/CER (sclite), label accuracy, CoT fields, generated-speech
consistency, the empathy judge, and results.json / RESULTS.md (see ``score_decode``)."""
