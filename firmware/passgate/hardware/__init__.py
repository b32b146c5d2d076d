"""The checkpoint's peripherals, each behind a small interface, and what turns their raw data
into text: ``camera`` (frame sources), ``decode`` (QR texts from a frame), ``display`` (OLED
screens), ``signals`` (buzzer, LEDs, door relay).

Hardware libraries (picamera2, luma, gpiozero's pin factories, cv2) are imported inside the
adapters, lazily: importing this package never touches ``/dev``.
"""
