"""Buzzer, LEDs and the door relay: ``gpio`` drives them through gpiozero, ``retry`` keeps the
loop going (a "GPIO fault" screen, retried with backoff) while they cannot be set up.
"""
