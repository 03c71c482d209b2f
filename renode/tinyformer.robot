*** Settings ***
Documentation       One inference of a compiled model on Renode's STM32F746, over USART3 (the
...                 Nucleo's ST-LINK port), in TinyFormer's protocol: boot, input, run, the
...                 output checked byte for byte against the numpy reference (so its sha256 is
...                 the reference's), and the per-layer counts the firmware reports checked
...                 against the ones it measured (read from its memory).
...                 Compile, then run with the repository's Python environment:
...                 tinyformer compile MODEL.tfir -o build/stm32f746 --board stm32f746
...                 PYTHONPATH=$PWD renode-test renode/tinyformer.robot
...                 (another folder: --variable OUT:/abs/path/to/it)
Resource            ${RENODEKEYWORDS}
Library             Collections
Library             ${CURDIR}/tinyformer_frames.py
Suite Setup         Setup
Suite Teardown      Teardown
Test Teardown       Test Teardown

*** Variables ***
${OUT}              ${CURDIR}/../build/stm32f746
${ELF}              ${OUT}/build/firmware.elf
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

Start And Wait For BOOT
    Create STM32F746 Machine
    Create Terminal Tester    ${UART}    timeout=60    binaryMode=true
    Start Emulation
    Wait For Bytes On Uart    ${BOOT_FRAME}

Send Frame
    [Arguments]    @{frame}
    FOR    ${byte}    IN    @{frame}
        Send Key To Uart    ${byte}
    END

Send And Expect
    [Arguments]    ${exchange}
    FOR    ${pair}    IN    @{exchange}
        Send Frame    @{pair}[0]
        Wait For Bytes On Uart    ${pair}[1]
    END

*** Test Cases ***
Firmware Boots And Sends BOOT
    Start And Wait For BOOT

Inference Gives The Reference Output And Reports Its Counts
    Start And Wait For BOOT
    ${input}=    Input Exchange    ${OUT}
    Send And Expect    ${input}
    ${run}=    Run Request    ${OUT}
    Send Frame    @{run}
    # DATA comes after RUN's reply: the run is done and its output is the reference's
    ${output}=    Output Exchange    ${OUT}
    Send And Expect    ${output}
    ${sha}=    Output Sha256    ${OUT}
    Log    output sha256 ${sha} (the reference's)
    ${address}    ${layers}=    Layer Counts Address    ${OUT}
    @{counts}=    Create List
    FOR    ${i}    IN RANGE    ${layers}
        ${word}=    Execute Command    sysbus ReadDoubleWord ${{hex($address + 4 * $i)}}
        ${count}=    Evaluate    int($word.strip(), 16)
        Should Be True    ${count} > 0    layer ${i} has no count
        Append To List    ${counts}    ${count}
    END
    ${reported}=    Layer Counts Exchange    @{counts}
    Send And Expect    ${reported}
