"""Faithful fakes of providers' native HTTP APIs, served on loopback for the tests."""
