"""On-site checks for technicians: ``checks`` (hardware: screen, buzzer, LEDs, relay) and
``state`` (journal, clock, trust data, sync), one ``Result`` per check.
"""
