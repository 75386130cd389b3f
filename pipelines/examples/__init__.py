"""Example workloads for frugal pipelines (penguin classification)."""
