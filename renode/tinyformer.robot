*** Settings ***
Documentation       Boots TinyFormer's stm32f746 firmware on Renode's STM32F746 platform and
...                 checks the BOOT frame it sends on USART3 (the Nucleo's ST-LINK port).
...                 Run: renode-test renode/tinyformer.robot --variable ELF:/abs/path/firmware.elf
Resource            ${RENODEKEYWORDS}
Suite Setup         Setup
Suite Teardown      Teardown
Test Teardown       Test Teardown

*** Variables ***
${ELF}              ${CURDIR}/../build/stm32f746/firmware.elf
${UART}             sysbus.usart3
# encode_frame(Frame(BOOT=0x86, seq=0, payload=b"")): COBS(86 00 0000 crc32) + 00 delimiter.
${BOOT_FRAME}       02 86 01 01 05 fb 36 76 e9 00

*** Keywords ***
Create STM32F746 Machine
    Execute Command     mach create "tinyformer"
    Execute Command     machine LoadPlatformDescription @platforms/cpus/stm32f746.repl
    Execute Command     machine LoadPlatformDescriptionFromString "dwt: Miscellaneous.DWT @ sysbus 0xE0001000 { frequency: 216000000 }"
    Execute Command     sysbus.cpu PerformanceInMips 216
    Execute Command     sysbus LoadELF @${ELF}

*** Test Cases ***
Firmware Boots And Sends BOOT
    Create STM32F746 Machine
    Create Terminal Tester    ${UART}    timeout=10    binaryMode=true
    Start Emulation
    Wait For Bytes On Uart    ${BOOT_FRAME}
